// BackgroundJob: the scheduler's periodic file writes run off its thread, one at a time, and a
// failed write is reported on the scheduler's next call rather than lost.
#include "launch/campaign/background_job.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>

namespace flexnas {
namespace {

TEST(BackgroundJob, RunsTheJobOffTheCallersThread) {
  BackgroundJob job;
  std::thread::id ran_on;
  ASSERT_TRUE(job.try_start([&] { ran_on = std::this_thread::get_id(); }));
  job.wait();
  EXPECT_NE(ran_on, std::thread::id());
  EXPECT_NE(ran_on, std::this_thread::get_id());
}

TEST(BackgroundJob, RefusesASecondJobWhileOneRuns) {
  BackgroundJob job;
  std::atomic<bool> release{false};
  std::atomic<int> runs{0};
  ASSERT_TRUE(job.try_start([&] {
    while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    ++runs;
  }));
  EXPECT_FALSE(job.try_start([&] { runs += 100; }));  // refused, not queued
  release = true;
  job.wait();
  EXPECT_EQ(runs, 1);
  EXPECT_TRUE(job.try_start([&] { ++runs; }));
  job.wait();
  EXPECT_EQ(runs, 2);
}

TEST(BackgroundJob, AFailedJobIsRethrownOnceOnTheNextCall) {
  BackgroundJob job;
  ASSERT_TRUE(job.try_start([] { throw std::runtime_error("disk full"); }));
  EXPECT_THROW(
      {
        try {
          job.wait();
        } catch (const std::runtime_error& e) {
          EXPECT_STREQ(e.what(), "disk full");
          throw;
        }
      },
      std::runtime_error);
  EXPECT_NO_THROW(job.wait());  // reported once
  // try_start reports it too, before starting anything.
  ASSERT_TRUE(job.try_start([] { throw std::runtime_error("again"); }));
  // While the failing job runs, try_start skips (false); once it has failed, it throws. Poll with a
  // bound instead of guessing how long the job takes.
  bool thrown = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!thrown && std::chrono::steady_clock::now() < deadline) {
    try {
      ASSERT_FALSE(job.try_start([] {})) << "a new job started before the failure was reported";
    } catch (const std::runtime_error& e) {
      EXPECT_STREQ(e.what(), "again");
      thrown = true;
    }
    if (!thrown) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_TRUE(thrown) << "the failure was not reported within 30 s";
}

TEST(BackgroundJob, DestructorFinishesTheJobInProgress) {
  std::atomic<bool> done{false};
  {
    BackgroundJob job;
    ASSERT_TRUE(job.try_start([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(30));
      done = true;
    }));
  }
  EXPECT_TRUE(done);
}

}  // namespace
}  // namespace flexnas
