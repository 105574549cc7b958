#pragma once
// A tiny XML well-formedness checker for the SVG pictures the tests produce (no XML library is a
// dependency): one root element, properly nested and closed tags, quoted and unique attributes,
// only the five predefined entities or character references, no '<' or stray '&' in text or values.
// Also counts elements by name.
#include <cctype>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace flexnas::testing_xml {

struct XmlCheck {
  bool ok = false;
  std::string error;                      // first problem, with its offset
  std::string root;                       // the root element's name
  std::map<std::string, int> elements;    // element name -> count
};

inline XmlCheck check_xml(const std::string& s) {
  XmlCheck r;
  size_t i = 0;
  std::vector<std::string> stack;
  bool seen_root = false;
  auto fail = [&](const std::string& what) {
    r.ok = false;
    r.error = what + " at offset " + std::to_string(i);
    return r;
  };
  auto name_char = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == ':' || c == '.'; };
  auto check_entities = [&](size_t from, size_t to) -> bool {  // text or attribute value [from, to)
    for (size_t k = from; k < to; ++k) {
      if (s[k] == '<') return false;
      if (s[k] != '&') continue;
      const size_t semi = s.find(';', k);
      if (semi == std::string::npos || semi > to) return false;
      const std::string ent = s.substr(k + 1, semi - k - 1);
      static const std::set<std::string> kNamed = {"amp", "lt", "gt", "quot", "apos"};
      bool valid = kNamed.count(ent) > 0;
      if (!valid && ent.size() > 1 && ent[0] == '#') {
        valid = true;
        const bool hex = ent[1] == 'x';
        for (size_t j = hex ? 2 : 1; j < ent.size(); ++j)
          valid = valid && (hex ? std::isxdigit(static_cast<unsigned char>(ent[j])) : std::isdigit(static_cast<unsigned char>(ent[j])));
        valid = valid && ent.size() > (hex ? 2u : 1u);
      }
      if (!valid) return false;
      k = semi;
    }
    return true;
  };
  auto skip_space = [&] {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  };
  while (i < s.size()) {
    if (s[i] != '<') {
      const size_t next = s.find('<', i);
      const size_t end = next == std::string::npos ? s.size() : next;
      bool blank = true;
      for (size_t k = i; k < end; ++k) blank = blank && std::isspace(static_cast<unsigned char>(s[k]));
      if (stack.empty() && !blank) return fail("text outside the root element");
      if (!check_entities(i, end)) return fail("bad character or entity in text");
      i = end;
      continue;
    }
    if (s.compare(i, 4, "<!--") == 0) {
      const size_t end = s.find("-->", i + 4);
      if (end == std::string::npos) return fail("unclosed comment");
      i = end + 3;
      continue;
    }
    if (s.compare(i, 2, "<?") == 0) {
      const size_t end = s.find("?>", i + 2);
      if (end == std::string::npos) return fail("unclosed processing instruction");
      i = end + 2;
      continue;
    }
    if (s.compare(i, 2, "</") == 0) {
      i += 2;
      const size_t start = i;
      while (i < s.size() && name_char(s[i])) ++i;
      const std::string name = s.substr(start, i - start);
      skip_space();
      if (i >= s.size() || s[i] != '>') return fail("bad end tag");
      if (stack.empty() || stack.back() != name) return fail("end tag </" + name + "> does not match");
      stack.pop_back();
      ++i;
      continue;
    }
    ++i;  // a start tag
    const size_t start = i;
    while (i < s.size() && name_char(s[i])) ++i;
    const std::string name = s.substr(start, i - start);
    if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0])) || name[0] == '-') return fail("bad element name");
    if (stack.empty()) {
      if (seen_root) return fail("a second root element");
      seen_root = true;
      r.root = name;
    }
    std::set<std::string> attributes;
    bool closed = false;
    for (;;) {
      const size_t before = i;
      skip_space();
      if (i >= s.size()) return fail("unterminated tag");
      if (s[i] == '>') {
        ++i;
        break;
      }
      if (s.compare(i, 2, "/>") == 0) {
        i += 2;
        closed = true;
        break;
      }
      if (i == before) return fail("no space before an attribute");
      const size_t a = i;
      while (i < s.size() && name_char(s[i])) ++i;
      const std::string attribute = s.substr(a, i - a);
      if (attribute.empty()) return fail("bad attribute name");
      if (!attributes.insert(attribute).second) return fail("duplicate attribute " + attribute);
      skip_space();
      if (i >= s.size() || s[i] != '=') return fail("attribute without value");
      ++i;
      skip_space();
      if (i >= s.size() || (s[i] != '\'' && s[i] != '"')) return fail("unquoted attribute value");
      const char quote = s[i++];
      const size_t end = s.find(quote, i);
      if (end == std::string::npos) return fail("unterminated attribute value");
      if (!check_entities(i, end)) return fail("bad character or entity in attribute " + attribute);
      i = end + 1;
    }
    ++r.elements[name];
    if (!closed) stack.push_back(name);
  }
  if (!seen_root) return fail("no root element");
  if (!stack.empty()) return fail("unclosed <" + stack.back() + ">");
  r.ok = true;
  return r;
}

}  // namespace flexnas::testing_xml
