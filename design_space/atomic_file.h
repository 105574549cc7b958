#pragma once
// Crash-safe file writes: write to "<path>.tmp.<pid>", flush + fsync, rename over <path>.
// A reader sees either the old file or the new one, never a torn one.
#include <functional>
#include <ostream>
#include <string>

namespace flexnas {

/// Writes `content` to `path` atomically. Throws Error on I/O failure (the old file is kept).
void write_file_atomic(const std::string& path, const std::string& content);

/// Streams into `path` atomically: `writer` fills the stream; on exception the temp file is removed.
void write_file_atomic(const std::string& path, const std::function<void(std::ostream&)>& writer);

/// Whole file as a string; throws ConfigError ("cannot open file") naming the path.
std::string read_file(const std::string& path);

}  // namespace flexnas
