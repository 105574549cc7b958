#include "launch/campaign/signals.h"

#include <signal.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <fstream>

namespace flexnas::launch {

namespace {
std::atomic<int> g_stop_signal{0};
extern "C" void on_stop_signal(int sig) {
  int expected = 0;
  g_stop_signal.compare_exchange_strong(expected, sig);
}
}  // namespace

void install_stop_handlers() {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGTERM, SIGINT, SIGUSR1}) sigaction(sig, &sa, nullptr);
}
void request_stop(int sig) { on_stop_signal(sig); }
int stop_signal() { return g_stop_signal.load(); }
void clear_stop() { g_stop_signal.store(0); }

int drain_file_signal() {
  const char* path = std::getenv(kDrainFileEnv);
  if (!path || !*path) return 0;
  std::ifstream in(path);
  if (!in) return 0;
  int sig = 0;
  // The file names the signal its writer caught; an empty or garbled one still asks for a drain.
  if (!(in >> sig) || (sig != SIGTERM && sig != SIGINT && sig != SIGUSR1)) sig = SIGUSR1;
  return sig;
}

}  // namespace flexnas::launch
