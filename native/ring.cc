// native/ring.cc — io_uring setup, ring mapping and submission with raw syscalls.

#include "ring.h"

#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace ringstream {

namespace {

int SysSetup(unsigned entries, io_uring_params* params) {
  return static_cast<int>(syscall(__NR_io_uring_setup, entries, params));
}

int SysEnter(int fd, unsigned toSubmit) {
  return static_cast<int>(syscall(__NR_io_uring_enter, fd, toSubmit, 0, 0, nullptr, 0));
}

int SysRegister(int fd, unsigned opcode, const void* arg, unsigned count) {
  return static_cast<int>(syscall(__NR_io_uring_register, fd, opcode, arg, count));
}

void* MapRegion(int fd, size_t size, off_t offset) {
  void* at = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, offset);
  return at == MAP_FAILED ? nullptr : at;
}

template <typename T>
T* At(void* base, unsigned offset) {
  return reinterpret_cast<T*>(static_cast<char*>(base) + offset);
}

}  // namespace

int Ring::Open(unsigned entries, const char** failedSyscall) {
  io_uring_params params;
  std::memset(&params, 0, sizeof params);
  // SINGLE_ISSUER and COOP_TASKRUN save the kernel IPIs; both need 6.0+/5.19+, so a kernel
  // that rejects the flags gets a plain ring rather than none.
  params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN;
  int fd = SysSetup(entries, &params);
  if (fd < 0 && errno == EINVAL) {
    std::memset(&params, 0, sizeof params);
    fd = SysSetup(entries, &params);
  }
  if (fd < 0) {
    *failedSyscall = "io_uring_setup";
    return errno;
  }
  fd_ = fd;
  const int error = MapRings(params);
  if (error != 0) {
    *failedSyscall = "mmap";
    Close();
    return error;
  }
  return 0;
}

int Ring::MapRings(const io_uring_params& params) {
  sqEntries_ = params.sq_entries;
  cqEntries_ = params.cq_entries;
  sqRingSize_ = params.sq_off.array + params.sq_entries * sizeof(unsigned);
  cqRingSize_ = params.cq_off.cqes + params.cq_entries * sizeof(io_uring_cqe);
  const bool singleMap = (params.features & IORING_FEAT_SINGLE_MMAP) != 0;
  if (singleMap) {
    if (cqRingSize_ > sqRingSize_) sqRingSize_ = cqRingSize_;
    cqRingSize_ = sqRingSize_;
  }
  sqRing_ = MapRegion(fd_, sqRingSize_, IORING_OFF_SQ_RING);
  if (sqRing_ == nullptr) return errno;
  if (singleMap) {
    cqRing_ = sqRing_;
  } else {
    cqRing_ = MapRegion(fd_, cqRingSize_, IORING_OFF_CQ_RING);
    if (cqRing_ == nullptr) return errno;
  }
  sqesSize_ = params.sq_entries * sizeof(io_uring_sqe);
  sqes_ = static_cast<io_uring_sqe*>(MapRegion(fd_, sqesSize_, IORING_OFF_SQES));
  if (sqes_ == nullptr) return errno;

  sqHead_ = At<unsigned>(sqRing_, params.sq_off.head);
  sqTail_ = At<unsigned>(sqRing_, params.sq_off.tail);
  sqMask_ = *At<unsigned>(sqRing_, params.sq_off.ring_mask);
  sqLocalTail_ = *sqTail_;
  // SQE i always sits in SQ array slot i, so the indirection array is set up once.
  unsigned* array = At<unsigned>(sqRing_, params.sq_off.array);
  for (unsigned i = 0; i < sqEntries_; i++) array[i] = i;

  cqHead_ = At<unsigned>(cqRing_, params.cq_off.head);
  cqTail_ = At<unsigned>(cqRing_, params.cq_off.tail);
  cqMask_ = *At<unsigned>(cqRing_, params.cq_off.ring_mask);
  cqes_ = At<io_uring_cqe>(cqRing_, params.cq_off.cqes);
  return 0;
}

void Ring::Close() {
  if (sqes_ != nullptr) munmap(sqes_, sqesSize_);
  if (cqRing_ != nullptr && cqRing_ != sqRing_) munmap(cqRing_, cqRingSize_);
  if (sqRing_ != nullptr) munmap(sqRing_, sqRingSize_);
  sqes_ = nullptr;
  cqRing_ = nullptr;
  sqRing_ = nullptr;
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

int Ring::RegisterEventFd(int eventFd) {
  return SysRegister(fd_, IORING_REGISTER_EVENTFD, &eventFd, 1) < 0 ? errno : 0;
}

unsigned Ring::SqFree() const {
  return sqEntries_ - (sqLocalTail_ - __atomic_load_n(sqHead_, __ATOMIC_ACQUIRE));
}

io_uring_sqe* Ring::NextSqe() {
  if (SqFree() == 0) return nullptr;
  io_uring_sqe* sqe = &sqes_[sqLocalTail_ & sqMask_];
  std::memset(sqe, 0, sizeof *sqe);
  sqLocalTail_++;
  return sqe;
}

int Ring::Submit(unsigned* left) {
  // The tail is published here, after the caller filled every SQE it reserved.
  __atomic_store_n(sqTail_, sqLocalTail_, __ATOMIC_RELEASE);
  int error = 0;
  for (;;) {
    const unsigned pending = sqLocalTail_ - __atomic_load_n(sqHead_, __ATOMIC_ACQUIRE);
    if (pending == 0) break;
    const int submitted = SysEnter(fd_, pending);
    if (submitted < 0 && errno == EINTR) continue;
    if (submitted < 0) {
      error = errno;
      break;
    }
    if (submitted == 0) break;
  }
  *left = sqLocalTail_ - __atomic_load_n(sqHead_, __ATOMIC_ACQUIRE);
  return error;
}

}  // namespace ringstream
