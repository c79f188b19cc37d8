// Host emulation of the CUDA execution model, so that the unmodified kernel source that nvcc
// compiles can be run (and tested) on a machine without a GPU. Tests and examples include it
// before any kernel header (hired/kernels/device.hpp checks); it is never installed.
//
// Model:
// - Blocks run one after another, in blockIdx order (x fastest). Each block runs on
//   blockDim.x*y*z real threads taken from a process-wide pool (reused across blocks and
//   launches), but only ONE of them runs at a time: a thread keeps a baton until it reaches
//   __syncthreads, a warp collective or its end, then passes it to the next runnable thread in
//   the launch's Schedule order (cyclically). Execution is therefore deterministic, and a
//   missing barrier gives a reproducible wrong result instead of a flaky one: under
//   Schedule::forward thread 0 runs ahead and reads what later threads have not written yet;
//   Schedule::reverse catches the mirror case.
// - __syncthreads releases once every non-exited thread of the block waits at it. Threads that
//   exited count as arrived (what hardware does), unless Options::strict, which reports it:
//   CUDA calls it undefined behaviour.
// - Warp collectives (__shfl*_sync, __ballot/__any/__all_sync, __syncwarp) are barriers over the
//   non-exited lanes named in the mask: each lane deposits its operand, and all results are
//   computed once every such lane has arrived. A mask that excludes the caller, or lanes whose
//   overlapping calls disagree on mask, operation or operand size, is an error. Reading a lane
//   that does not take part gives a poison value (all bits set: NaN for floats, -1 for ints), or
//   an error in strict mode; strict mode also rejects masks that name exited or absent lanes,
//   which is undefined on sm_6x (the project targets the P40).
// - An exception thrown by a kernel thread (or an emulator error: deadlock, bad mask, __trap)
//   aborts the block: the other threads are unwound and launch() rethrows the first exception.
//   (<cassert>'s assert aborts the whole process; kernels use HIRED_KERNEL_ASSERT instead.)
//
// Limits (by design; keep kernels within them):
// - __shared__ is `static`: a function-local static is per-block shared memory because blocks
//   run one at a time. It is zero only before the first block ever runs and afterwards holds
//   whatever the previous block or launch left, so kernels must not rely on it being zero (nor
//   on leftovers: a test that expects a missing barrier to show should vary its inputs).
//   Dynamic `extern __shared__` arrays are not supported (it does not compile here).
// - Launches are serialised process-wide (they share the __shared__ statics and the pool);
//   streams, events and launches from inside a kernel are not emulated.
// - __CUDA_ARCH__ is undefined here, so arch-specific #if branches run their fallback path.
// - __activemask() returns the warp's non-exited lanes: the emulator has no notion of
//   divergence. Memory-model effects (fences, __ldg, atomics' scope) are trivially satisfied.
// - __half / __nv_bfloat16 and the CUDA math library are not provided; kernels keep 16-bit
//   values as raw bits (hired/half.hpp) on both compilers.
#pragma once

#if defined(__CUDACC__)
#error "hired/emulator/cuda.hpp is the host emulation of CUDA; nvcc compiles the kernels itself"
#endif
#define HIRED_HOST_EMULATOR 1

#include <algorithm>
#include <atomic>
#include <bit>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <semaphore>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

// ---- Qualifiers. `__restrict__` is already a g++/clang keyword, so it needs no macro. ----
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static

// ---- Built-in types and variables ----
struct uint3 {
  unsigned x = 0, y = 0, z = 0;
};

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}  // NOLINT: implicit, as in CUDA
  constexpr operator uint3() const { return {x, y, z}; }
};

// Set by the emulator on each pool thread before it runs a kernel thread.
inline thread_local uint3 threadIdx;
inline thread_local uint3 blockIdx;
inline thread_local dim3 blockDim;
inline thread_local dim3 gridDim;
inline constexpr int warpSize = 32;

namespace hired::emu {

/// Order in which the threads of a block take turns (by linear thread index).
enum class Schedule { forward, reverse };

struct Options {
  Schedule schedule = Schedule::forward;
  /// Report, instead of tolerating, what CUDA leaves undefined but hardware usually survives:
  /// a __syncthreads that some threads never reach because they exited, warp masks naming
  /// exited or absent lanes, shuffles reading a lane that does not take part.
  bool strict = false;
};

/// A launch error, a kernel bug the emulator detected (deadlock, bad mask, strict-mode UB), or
/// __trap(). Exceptions thrown by kernel code itself reach the caller unchanged.
class KernelError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {

enum class Op : unsigned char { sync, shfl_idx, shfl_up, shfl_down, shfl_xor, ballot, any, all };
enum class State : unsigned char { ready, barrier, warp, exited };

inline const char* op_name(Op op) {
  constexpr const char* names[] = {"__syncwarp",       "__shfl_sync",      "__shfl_up_sync",
                                   "__shfl_down_sync", "__shfl_xor_sync",  "__ballot_sync",
                                   "__any_sync",       "__all_sync"};
  return names[static_cast<int>(op)];
}

inline std::string hex(unsigned mask) {
  char buffer[16];
  std::snprintf(buffer, sizeof buffer, "0x%08x", mask);
  return buffer;
}

struct Thread {
  State state = State::ready;
  Op op = Op::sync;        // pending collective
  unsigned mask = 0;       // its member mask
  unsigned arg = 0;        // source lane, delta or lane mask
  unsigned width = 32;
  unsigned size = 0;       // operand size in bytes
  std::uint64_t value = 0; // deposited operand or predicate
  std::uint64_t result = 0;
};

struct Abort {};  // unwinds the other threads of a failed block; never leaves the emulator

// A one-token semaphore: the baton. On Linux a bare futex: with 256-1024 waiting threads it
// measured 5-8 us per hand-over (one futex wake + one wait) against 11-19 us for
// std::binary_semaphore (libstdc++ 12). The atomic's release/acquire pair carries the
// happens-before edge (visible to TSan); the futex only puts the waiter to sleep.
class Baton {
 public:
#if defined(__linux__)
  void release() {
    go_.store(1, std::memory_order_release);
    syscall(SYS_futex, &go_, FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
  }
  void acquire() {
    while (go_.exchange(0, std::memory_order_acquire) == 0)
      syscall(SYS_futex, &go_, FUTEX_WAIT_PRIVATE, 0, nullptr, nullptr, 0);
  }

 private:
  std::atomic<int> go_{0};  // int: the futex word is 32 bits
#else
  void release() { go_.release(); }
  void acquire() { go_.acquire(); }

 private:
  std::binary_semaphore go_{0};
#endif
};

class Engine;
struct Current {
  Engine* engine = nullptr;
  unsigned tid = 0;
};
inline thread_local Current current;

// Only the thread whose baton was released last runs (kernel code or emulator
// bookkeeping); it releases the next one's baton and then blocks on its own. The
// release/acquire pair orders every access to block state and shared memory from one turn to
// the next, so no further locking is needed (and TSan sees the happens-before edges). The host
// thread joins the same chain: it releases the first thread and waits on `host_`.
class Engine {
 public:
  static Engine& instance() {
    static Engine engine;
    return engine;
  }

  Engine() = default;
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  ~Engine() {
    stop_ = true;  // workers are idle; each sees it after its baton is released
    for (auto& worker : workers_) worker->go.release();
    for (auto& worker : workers_) worker->thread.join();
  }

  std::size_t pool_size() const { return pool_size_.load(); }

  void run(const Options& options, dim3 grid, dim3 block, void (*body)(void*), void* context) {
    if (current.engine != nullptr)
      throw KernelError("hired::emu::launch called from inside a kernel (not supported)");
    validate(grid, block);
    std::lock_guard lock(launch_mutex_);
    n_ = block.x * block.y * block.z;
    while (workers_.size() < n_) spawn();
    options_ = options;
    grid_ = grid;
    block_ = block;
    body_ = body;
    context_ = context;
    order_.resize(n_);
    position_.resize(n_);
    for (unsigned i = 0; i < n_; ++i) {
      order_[i] = options.schedule == Schedule::forward ? i : n_ - 1 - i;
      position_[order_[i]] = i;
    }
    for (unsigned z = 0; z < grid.z; ++z)
      for (unsigned y = 0; y < grid.y; ++y)
        for (unsigned x = 0; x < grid.x; ++x) {
          block_index_ = {x, y, z};
          threads_.assign(n_, Thread{});
          live_ = n_;
          at_barrier_ = 0;
          aborted_ = false;
          cur_ = order_[0];
          workers_[cur_]->go.release();
          host_.acquire();  // the last thread to exit releases it
          if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
        }
  }

  // ---- Called by kernel threads, which hold the baton. ----

  // __syncthreads and its counting variants: returns (arrived << 32) | count of true predicates.
  std::uint64_t barrier(unsigned tid, bool predicate) {
    Thread& self = threads_[tid];
    self.state = State::barrier;
    self.value = predicate;
    if (++at_barrier_ == live_) release_barrier();
    hand_over(tid);
    wait_turn(tid);
    return self.result;
  }

  std::uint64_t collective(unsigned tid, Op op, unsigned mask, std::uint64_t value, unsigned size,
                           unsigned arg, unsigned width) {
    const unsigned lane = tid % 32, base = tid - lane, lanes = std::min(32u, n_ - base);
    if ((mask >> lane & 1u) == 0)
      throw KernelError(where(tid) + ": " + op_name(op) + " called with mask " + hex(mask) +
                        " that excludes the calling lane " + std::to_string(lane));
    for (unsigned k = 0; k < lanes; ++k) {
      const Thread& other = threads_[base + k];
      if (other.state != State::warp) continue;
      const bool overlap = (mask >> k & 1u) || (other.mask >> lane & 1u);
      if (overlap && (other.mask != mask || other.op != op || other.size != size))
        throw KernelError(where(tid) + ": lane " + std::to_string(lane) + " calls " +
                          op_name(op) + " with mask " + hex(mask) + " while lane " +
                          std::to_string(k) + " waits in " + op_name(other.op) + " with mask " +
                          hex(other.mask) + " (lanes must agree)");
    }
    Thread& self = threads_[tid];
    self.state = State::warp;
    self.op = op;
    self.mask = mask;
    self.value = value;
    self.size = size;
    self.arg = arg;
    self.width = width;
    try_complete(base, lanes, mask);
    hand_over(tid);
    wait_turn(tid);
    return self.result;
  }

  unsigned active_mask(unsigned tid) const {
    const unsigned base = tid - tid % 32, lanes = std::min(32u, n_ - base);
    unsigned mask = 0;
    for (unsigned k = 0; k < lanes; ++k)
      if (threads_[base + k].state != State::exited) mask |= 1u << k;
    return mask;
  }

  std::string where(unsigned tid) const {
    const unsigned x = tid % block_.x, y = tid / block_.x % block_.y, z = tid / block_.x / block_.y;
    return "block (" + std::to_string(block_index_.x) + "," + std::to_string(block_index_.y) +
           "," + std::to_string(block_index_.z) + ") thread (" + std::to_string(x) + "," +
           std::to_string(y) + "," + std::to_string(z) + ")";
  }

 private:
  struct Worker {
    unsigned index = 0;
    Baton go;  // released when this worker's turn comes
    std::thread thread;
  };

  static void validate(dim3 grid, dim3 block) {
    const auto bad = [](const char* what) {
      throw KernelError(std::string("hired::emu::launch: invalid configuration: ") + what);
    };
    if (block.x == 0 || block.y == 0 || block.z == 0) bad("empty block");
    if (block.x > 1024 || block.y > 1024 || block.z > 64) bad("block dimension too large");
    if (std::uint64_t{block.x} * block.y * block.z > 1024) bad("more than 1024 threads per block");
    if (grid.x == 0 || grid.y == 0 || grid.z == 0) bad("empty grid");
    if (grid.x > 0x7fffffffu || grid.y > 65535 || grid.z > 65535) bad("grid dimension too large");
  }

  void spawn() {
    auto worker = std::make_unique<Worker>();
    worker->index = static_cast<unsigned>(workers_.size());
    Worker& ref = *worker;
    workers_.push_back(std::move(worker));
    pool_size_.store(workers_.size());
    ref.thread = std::thread([this, &ref] { worker_main(ref); });
  }

  void worker_main(Worker& worker) {
    for (;;) {
      worker.go.acquire();
      if (stop_) return;
      run_thread(worker.index);
    }
  }

  void run_thread(unsigned tid) {
    if (!aborted_) {
      threadIdx = {tid % block_.x, tid / block_.x % block_.y, tid / block_.x / block_.y};
      blockIdx = block_index_;
      blockDim = block_;
      gridDim = grid_;
      current = {this, tid};
      try {
        body_(context_);
      } catch (const Abort&) {
      } catch (...) {
        fail(std::current_exception());
      }
      current = {};
    }
    threads_[tid].state = State::exited;
    --live_;
    if (!aborted_) {
      if (at_barrier_ > 0 && at_barrier_ == live_) release_barrier();
      // This lane may have been the last one a pending warp collective waited for.
      const unsigned base = tid - tid % 32, lanes = std::min(32u, n_ - base);
      for (unsigned k = 0; k < lanes && !aborted_; ++k)
        if (threads_[base + k].state == State::warp)
          try_complete(base, lanes, threads_[base + k].mask);
    }
    hand_over(tid);
  }

  void fail(std::exception_ptr error) {
    if (!error_) error_ = std::move(error);
    aborted_ = true;
  }
  void fail(const std::string& message) { fail(std::make_exception_ptr(KernelError(message))); }

  void release_barrier() {
    if (options_.strict && live_ < n_)
      return fail(where(cur_) + ": __syncthreads reached by " + std::to_string(live_) + " of " +
                  std::to_string(n_) + " threads, the others exited (undefined in CUDA; strict)");
    std::uint64_t count = 0;
    for (const Thread& t : threads_) count += t.state == State::barrier && t.value != 0;
    for (Thread& t : threads_)
      if (t.state == State::barrier) {
        t.state = State::ready;
        t.result = std::uint64_t{at_barrier_} << 32 | count;
      }
    at_barrier_ = 0;
  }

  // Completes the collective with this mask in the warp at `base` if all its lanes are in.
  void try_complete(unsigned base, unsigned lanes, unsigned mask) {
    unsigned members = 0;
    for (unsigned k = 0; k < lanes; ++k) {
      if ((mask >> k & 1u) == 0 || threads_[base + k].state == State::exited) continue;
      if (threads_[base + k].state != State::warp) return;  // still to come
      members |= 1u << k;
    }
    const Thread& first = threads_[base + static_cast<unsigned>(std::countr_zero(members))];
    if (options_.strict && members != mask)
      return fail(where(base) + " (warp): " + op_name(first.op) + " mask " + hex(mask) +
                  " names exited or absent lanes, live members " + hex(members) +
                  " (undefined on sm_6x; strict)");
    unsigned votes = 0;
    for (unsigned k = 0; k < lanes; ++k)
      if ((members >> k & 1u) && threads_[base + k].value != 0) votes |= 1u << k;
    for (unsigned k = 0; k < lanes; ++k) {
      if ((members >> k & 1u) == 0) continue;
      Thread& t = threads_[base + k];
      switch (t.op) {
        case Op::sync: break;
        case Op::ballot: t.result = votes; break;
        case Op::any: t.result = votes != 0; break;
        case Op::all: t.result = votes == members; break;
        default: {
          const unsigned source = shuffle_source(t.op, k, t.arg, t.width);
          if (members >> source & 1u) {
            t.result = threads_[base + source].value;
          } else if (options_.strict) {
            return fail(where(base + k) + ": " + op_name(t.op) + " reads lane " +
                        std::to_string(source) + ", which does not take part (mask " +
                        hex(mask) + "; strict)");
          } else {
            t.result = ~std::uint64_t{0};  // poison: undefined on hardware
          }
        }
      }
    }
    for (unsigned k = 0; k < lanes; ++k)
      if (members >> k & 1u) threads_[base + k].state = State::ready;
  }

  // The source lane as PTX shfl.sync defines it, with the clamp values CUDA's intrinsics pass:
  // a lane whose source falls outside its width-segment (up/down, xor towards a later segment)
  // reads its own value.
  static unsigned shuffle_source(Op op, unsigned lane, unsigned arg, unsigned width) {
    const unsigned segment = lane & ~(width - 1), last = segment + width - 1, b = arg & 31u;
    switch (op) {
      case Op::shfl_idx: return segment | (arg & (width - 1));
      case Op::shfl_up: return lane >= segment + b ? lane - b : lane;
      case Op::shfl_down: return lane + b <= last ? lane + b : lane;
      default: return (lane ^ b) <= last ? lane ^ b : lane;  // shfl_xor
    }
  }

  // Passes the baton to the next runnable thread after `from` in schedule order (cyclically,
  // ending with `from` itself). In an aborted block every live thread is runnable: it unwinds.
  // Nothing may touch engine state after the release: the next holder may already run.
  void hand_over(unsigned from) {
    if (live_ == 0) return host_.release();
    unsigned next = pick(from, aborted_);
    if (next == n_) {
      fail(deadlock_message());
      next = pick(from, true);
    }
    cur_ = next;
    workers_[next]->go.release();
  }

  unsigned pick(unsigned from, bool any_live) const {
    for (unsigned step = 1; step <= n_; ++step) {
      const unsigned tid = order_[(position_[from] + step) % n_];
      const State state = threads_[tid].state;
      if (state == State::ready || (any_live && state != State::exited)) return tid;
    }
    return n_;
  }

  std::string deadlock_message() const {
    std::string text = "block (" + std::to_string(block_index_.x) + "," +
                       std::to_string(block_index_.y) + "," + std::to_string(block_index_.z) +
                       "): deadlock, no thread can proceed: " + std::to_string(at_barrier_) +
                       " wait in __syncthreads";
    unsigned shown = 0;
    for (unsigned tid = 0; tid < n_; ++tid)
      if (threads_[tid].state == State::warp && shown++ < 4)
        text += "; warp " + std::to_string(tid / 32) + " lane " + std::to_string(tid % 32) +
                " waits in " + op_name(threads_[tid].op) + " with mask " + hex(threads_[tid].mask);
    return text;
  }

  void wait_turn(unsigned tid) {
    workers_[tid]->go.acquire();
    if (aborted_) throw Abort{};
  }

  std::mutex launch_mutex_;  // one launch at a time; the baton orders everything else
  Baton host_;
  std::vector<std::unique_ptr<Worker>> workers_;  // grows only between launches
  std::atomic<std::size_t> pool_size_{0};
  bool stop_ = false;

  Options options_;
  dim3 grid_, block_;
  void (*body_)(void*) = nullptr;
  void* context_ = nullptr;
  unsigned n_ = 0;                    // threads per block
  std::vector<unsigned> order_;       // schedule: turn -> thread
  std::vector<unsigned> position_;    // thread -> turn
  uint3 block_index_;
  std::vector<Thread> threads_;
  unsigned cur_ = 0;                  // holder of the baton
  unsigned live_ = 0, at_barrier_ = 0;
  bool aborted_ = false;
  std::exception_ptr error_;
};

inline Current& here(const char* what) {
  if (current.engine == nullptr)
    throw KernelError(std::string(what) + " called outside a kernel run by hired::emu::launch");
  return current;
}

template <class T>
concept Shufflable = std::is_trivially_copyable_v<T> && (sizeof(T) <= 8);

template <Shufflable T>
T shuffle(Op op, unsigned mask, T var, unsigned arg, int width) {
  Current& c = here(op_name(op));
  if (width < 1 || width > 32 || !std::has_single_bit(static_cast<unsigned>(width)))
    throw KernelError(c.engine->where(c.tid) + ": " + op_name(op) + " width " +
                      std::to_string(width) + " is not a power of two in [1, 32]");
  std::uint64_t bits = 0;
  std::memcpy(&bits, &var, sizeof(T));
  bits = c.engine->collective(c.tid, op, mask, bits, sizeof(T), arg, static_cast<unsigned>(width));
  T out;
  std::memcpy(&out, &bits, sizeof(T));
  return out;
}

inline std::uint64_t vote(Op op, unsigned mask, int predicate) {
  Current& c = here(op_name(op));
  return c.engine->collective(c.tid, op, mask, predicate != 0, 0, 0, 32);
}

inline std::uint64_t barrier(const char* what, int predicate) {
  Current& c = here(what);
  return c.engine->barrier(c.tid, predicate != 0);
}

template <class T>
concept AtomicInt = std::same_as<T, int> || std::same_as<T, unsigned> ||
                    std::same_as<T, unsigned long long>;

// Read-modify-write through std::atomic_ref: correct even if threads ever ran concurrently.
template <class T, class F>
T atomic_update(T* address, F update) {
  std::atomic_ref<T> ref(*address);
  T old = ref.load();
  while (!ref.compare_exchange_weak(old, update(old))) {
  }
  return old;
}

}  // namespace detail

/// Threads in the pool (grows to the largest block launched, never shrinks).
inline std::size_t pool_size() { return detail::Engine::instance().pool_size(); }

/// Runs kernel(args...) on every thread of every block; rethrows the first failure.
template <class Kernel, class... Args>
void launch_with(const Options& options, Kernel&& kernel, dim3 grid, dim3 block,
                 Args&&... args) {
  auto body = [&] { kernel(args...); };  // each thread copies by-value parameters, as in CUDA
  detail::Engine::instance().run(
      options, grid, block, [](void* p) { (*static_cast<decltype(body)*>(p))(); }, &body);
}

template <class Kernel, class... Args>
void launch(Kernel&& kernel, dim3 grid, dim3 block, Args&&... args) {
  launch_with(Options{}, std::forward<Kernel>(kernel), grid, block, std::forward<Args>(args)...);
}

}  // namespace hired::emu

// ---- Device intrinsics (global namespace, CUDA's names and signatures) ----

inline void __syncthreads() { hired::emu::detail::barrier("__syncthreads", 0); }
inline int __syncthreads_count(int predicate) {
  return static_cast<int>(hired::emu::detail::barrier("__syncthreads_count", predicate) &
                          0xffffffffu);
}
inline int __syncthreads_and(int predicate) {
  const std::uint64_t r = hired::emu::detail::barrier("__syncthreads_and", predicate);
  return (r & 0xffffffffu) == (r >> 32);
}
inline int __syncthreads_or(int predicate) {
  return (hired::emu::detail::barrier("__syncthreads_or", predicate) & 0xffffffffu) != 0;
}

inline void __syncwarp(unsigned mask = 0xffffffffu) {
  hired::emu::detail::vote(hired::emu::detail::Op::sync, mask, 0);
}
inline unsigned __ballot_sync(unsigned mask, int predicate) {
  return static_cast<unsigned>(
      hired::emu::detail::vote(hired::emu::detail::Op::ballot, mask, predicate));
}
inline int __any_sync(unsigned mask, int predicate) {
  return static_cast<int>(hired::emu::detail::vote(hired::emu::detail::Op::any, mask, predicate));
}
inline int __all_sync(unsigned mask, int predicate) {
  return static_cast<int>(hired::emu::detail::vote(hired::emu::detail::Op::all, mask, predicate));
}
inline unsigned __activemask() {
  auto& c = hired::emu::detail::here("__activemask");
  return c.engine->active_mask(c.tid);
}

template <hired::emu::detail::Shufflable T>
T __shfl_sync(unsigned mask, T var, int srcLane, int width = warpSize) {
  return hired::emu::detail::shuffle(hired::emu::detail::Op::shfl_idx, mask, var,
                                     static_cast<unsigned>(srcLane), width);
}
template <hired::emu::detail::Shufflable T>
T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
  return hired::emu::detail::shuffle(hired::emu::detail::Op::shfl_up, mask, var, delta, width);
}
template <hired::emu::detail::Shufflable T>
T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
  return hired::emu::detail::shuffle(hired::emu::detail::Op::shfl_down, mask, var, delta, width);
}
template <hired::emu::detail::Shufflable T>
T __shfl_xor_sync(unsigned mask, T var, int laneMask, int width = warpSize) {
  return hired::emu::detail::shuffle(hired::emu::detail::Op::shfl_xor, mask, var,
                                     static_cast<unsigned>(laneMask), width);
}

inline void __threadfence_block() {}
inline void __threadfence() {}
[[noreturn]] inline void __trap() {
  auto& c = hired::emu::detail::here("__trap");
  throw hired::emu::KernelError(c.engine->where(c.tid) + ": __trap()");
}
template <class T>
T __ldg(const T* address) {
  return *address;
}

// ---- Bit manipulation ----
inline int __popc(unsigned x) { return std::popcount(x); }
inline int __popcll(unsigned long long x) { return std::popcount(x); }
inline int __ffs(int x) {
  return x == 0 ? 0 : std::countr_zero(static_cast<unsigned>(x)) + 1;
}
inline int __ffsll(long long x) {
  return x == 0 ? 0 : std::countr_zero(static_cast<unsigned long long>(x)) + 1;
}
inline int __clz(int x) { return std::countl_zero(static_cast<unsigned>(x)); }
inline int __clzll(long long x) { return std::countl_zero(static_cast<unsigned long long>(x)); }
inline unsigned __brev(unsigned x) {
  unsigned r = 0;
  for (int i = 0; i < 32; ++i, x >>= 1) r = (r << 1) | (x & 1u);
  return r;
}
inline unsigned long long __brevll(unsigned long long x) {
  return static_cast<unsigned long long>(__brev(static_cast<unsigned>(x))) << 32 |
         __brev(static_cast<unsigned>(x >> 32));
}
inline unsigned __float_as_uint(float x) { return std::bit_cast<unsigned>(x); }
inline float __uint_as_float(unsigned x) { return std::bit_cast<float>(x); }
inline int __float_as_int(float x) { return std::bit_cast<int>(x); }
inline float __int_as_float(int x) { return std::bit_cast<float>(x); }

// ---- Atomics (the overloads CUDA has for sm_60+; all return the old value) ----
// The integer ones std::atomic_ref has a member for (additions wrap: no signed-overflow UB).
#define HIRED_EMU_INTEGER_ATOMIC(name, member)                \
  template <hired::emu::detail::AtomicInt T>                  \
  T name(T* address, std::type_identity_t<T> value) {         \
    return std::atomic_ref<T>(*address).member(value);        \
  }
HIRED_EMU_INTEGER_ATOMIC(atomicAdd, fetch_add)
HIRED_EMU_INTEGER_ATOMIC(atomicSub, fetch_sub)
HIRED_EMU_INTEGER_ATOMIC(atomicOr, fetch_or)
HIRED_EMU_INTEGER_ATOMIC(atomicAnd, fetch_and)
HIRED_EMU_INTEGER_ATOMIC(atomicXor, fetch_xor)
HIRED_EMU_INTEGER_ATOMIC(atomicExch, exchange)
#undef HIRED_EMU_INTEGER_ATOMIC
inline float atomicAdd(float* address, float value) {
  return hired::emu::detail::atomic_update(address, [=](float old) { return old + value; });
}
inline double atomicAdd(double* address, double value) {
  return hired::emu::detail::atomic_update(address, [=](double old) { return old + value; });
}
template <hired::emu::detail::AtomicInt T>
T atomicMax(T* address, std::type_identity_t<T> value) {
  return hired::emu::detail::atomic_update(address, [=](T old) { return std::max(old, value); });
}
template <hired::emu::detail::AtomicInt T>
T atomicMin(T* address, std::type_identity_t<T> value) {
  return hired::emu::detail::atomic_update(address, [=](T old) { return std::min(old, value); });
}
inline float atomicExch(float* address, float value) {
  return std::atomic_ref<float>(*address).exchange(value);
}
template <hired::emu::detail::AtomicInt T>
T atomicCAS(T* address, std::type_identity_t<T> compare, std::type_identity_t<T> value) {
  std::atomic_ref<T>(*address).compare_exchange_strong(compare, value);
  return compare;  // the old value either way
}

// A failed device-side check in emulation throws hired::emu::KernelError, which launch()
// rethrows (nvcc's build uses assert, which traps the kernel).
#define HIRED_KERNEL_ASSERT(condition)                                                     \
  ((condition) ? static_cast<void>(0)                                                      \
               : throw ::hired::emu::KernelError(std::string(__FILE__) + ":" +             \
                                                 std::to_string(__LINE__) +                \
                                                 ": kernel assertion failed: " #condition))
