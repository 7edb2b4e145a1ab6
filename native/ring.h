// native/ring.h — one io_uring instance built from raw syscalls (no liburing): setup with
// fallback flags, the mmapped SQ/CQ rings, SQE reservation, submission and CQE reaping.
// Knows nothing about Node; addon.cc owns slots, the eventfd and the JS surface.

#pragma once

#include <linux/io_uring.h>

#include <cstddef>
#include <cstdint>

// The installed kernel headers may predate the running kernel; define what we rely on.
#ifndef IORING_SETUP_COOP_TASKRUN
#define IORING_SETUP_COOP_TASKRUN (1U << 8)
#endif
#ifndef IORING_SETUP_SINGLE_ISSUER
#define IORING_SETUP_SINGLE_ISSUER (1U << 12)
#endif
#ifndef IORING_FEAT_SINGLE_MMAP
#define IORING_FEAT_SINGLE_MMAP (1U << 0)
#endif

namespace ringstream {

class Ring {
 public:
  Ring() = default;
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;
  ~Ring() { Close(); }

  // Returns 0, or the errno of the syscall that failed (nothing is left open then).
  // `failedSyscall` names that syscall for the error message.
  int Open(unsigned entries, const char** failedSyscall);
  void Close();
  bool IsOpen() const { return fd_ >= 0; }

  // Registers `eventFd` to be signalled on every posted CQE. Returns 0 or errno.
  int RegisterEventFd(int eventFd);

  unsigned SqEntries() const { return sqEntries_; }
  unsigned CqEntries() const { return cqEntries_; }
  unsigned SqFree() const;

  // A zeroed SQE at the local tail; the kernel sees it on the next Submit. nullptr when
  // the SQ is full; check SqFree() before reserving a linked pair.
  io_uring_sqe* NextSqe();

  // Hands every published SQE to the kernel. Returns 0, or errno (EAGAIN/EBUSY leave the
  // rest queued for a later call). `left` receives how many SQEs are still unsubmitted.
  int Submit(unsigned* left);

  // Calls visit(cqe) for up to `max` posted CQEs and consumes them. Returns the count.
  template <typename Visit>
  unsigned Reap(unsigned max, Visit visit) {
    unsigned head = *cqHead_;
    const unsigned tail = __atomic_load_n(cqTail_, __ATOMIC_ACQUIRE);
    unsigned count = 0;
    while (head != tail && count < max) {
      visit(cqes_[head & cqMask_]);
      head++;
      count++;
    }
    __atomic_store_n(cqHead_, head, __ATOMIC_RELEASE);
    return count;
  }

 private:
  int MapRings(const io_uring_params& params);

  int fd_ = -1;
  unsigned sqEntries_ = 0;
  unsigned cqEntries_ = 0;

  void* sqRing_ = nullptr;
  size_t sqRingSize_ = 0;
  void* cqRing_ = nullptr;  // equals sqRing_ with IORING_FEAT_SINGLE_MMAP
  size_t cqRingSize_ = 0;
  io_uring_sqe* sqes_ = nullptr;
  size_t sqesSize_ = 0;

  unsigned* sqHead_ = nullptr;
  unsigned* sqTail_ = nullptr;
  unsigned sqMask_ = 0;
  unsigned sqLocalTail_ = 0;
  unsigned* cqHead_ = nullptr;
  unsigned* cqTail_ = nullptr;
  unsigned cqMask_ = 0;
  io_uring_cqe* cqes_ = nullptr;
};

}  // namespace ringstream
