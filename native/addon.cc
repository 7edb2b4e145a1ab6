// native/addon.cc — the addon's JS surface: a ring with a fixed table of request slots,
// completions delivered through an eventfd watched by a uv_poll_t on Node's own loop and
// handed to JS in one call per wake-up. Policy (queueing, short writes, errors) is in
// src/io/uring.ts; this file validates cheaply and does one job.
//
//   create(slots, onCompletions(batch: Int32Array, count)) -> ring
//   prepWritev(ring, fd, buffers, position, flags) -> slot | -1   (flags: 1 = linked datasync,
//                               2 = background: IOSQE_ASYNC, the copy runs on io-wq)
//   prepRead(ring, fd, buffer, position) -> slot | -1
//   prepFsync(ring, fd, flags) -> slot | -1                      (flags: 1 = datasync)
//   submit(ring) -> SQEs left unsubmitted (kernel said EAGAIN/EBUSY)
//   close(ring)                                                  (only when idle)
//   lockFile(fd) -> 0 | errno   exclusive flock(2), non-blocking: the data directory's lock,
//                               which the kernel drops when the process dies (EWOULDBLOCK:
//                               another process holds it). Not the ring's, but the one
//                               system call ringstream needs that Node lacks.
//   syncFs(fd, done(errno))      syncfs(2) on libuv's thread pool: every write to the file
//                               system holding fd made durable, for a checkpoint that
//                               wrote a thousand files (one call instead of a datasync
//                               each, none of it on the event loop). Linux reports
//                               writeback errors from syncfs since 5.8.
//
// A batch holds `count` triples (slot, res, part); part 1 is a linked fsync. A slot is
// free again once its last part is reported.

#include <napi.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/uio.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "ring.h"

namespace ringstream {
namespace {

constexpr uint32_t kIovMax = 1024;            // Linux IOV_MAX: one writev takes no more
constexpr uint32_t kSlotsMax = 4096;          // bounds the iovec table (16 KiB per slot)
constexpr uint32_t kLengthMax = 0x7ffff000;   // Linux MAX_RW_COUNT: res must fit an int32
constexpr double kPositionMax = 9007199254740991.0;
constexpr uint32_t kFlagDatasync = 1;
constexpr uint32_t kFlagBackground = 2;  // IOSQE_ASYNC: the write runs on io-wq, not in submit
constexpr uint64_t kPartFsync = 1;
const napi_type_tag kRingTag = {0x72696e6773747265ULL, 0x616d2d7572696e67ULL};

struct RingHandle {
  explicit RingHandle(napi_env env) : env(env) {}
  ~RingHandle() {
    if (eventFd >= 0) close(eventFd);
  }

  napi_env env;
  Ring ring;
  int eventFd = -1;
  uv_poll_t poll;
  bool pollInited = false;
  bool pollClosed = false;
  bool closed = false;
  bool finalized = false;
  Napi::FunctionReference onCompletions;
  Napi::ObjectReference batch;
  std::unique_ptr<Napi::AsyncContext> asyncContext;
  // Per slot: CQEs still expected (0 = free) and IOV_MAX iovecs that stay put until the
  // write completes. Allocated once; untouched iovec pages are never faulted in.
  std::vector<uint8_t> partsLeft;
  std::vector<uint32_t> freeSlots;
  std::unique_ptr<iovec[]> iovecs;
  uint32_t busy = 0;
};

Napi::Error ErrnoError(Napi::Env env, int errnum, const char* syscall) {
  char name[64];
  char message[128];
  uv_err_name_r(-errnum, name, sizeof name);
  uv_strerror_r(-errnum, message, sizeof message);
  Napi::Error error = Napi::Error::New(env, std::string(name) + ": " + message + ", " + syscall);
  error.Set("code", Napi::String::New(env, name));
  error.Set("errno", Napi::Number::New(env, -errnum));
  error.Set("syscall", Napi::String::New(env, syscall));
  return error;
}

void MaybeDelete(RingHandle* handle) {
  if (handle->finalized && (handle->pollClosed || !handle->pollInited)) delete handle;
}

void OnPollClosed(uv_handle_t* poll) {
  auto* handle = static_cast<RingHandle*>(poll->data);
  // The eventfd is closed only now: libuv must stop watching it first.
  close(handle->eventFd);
  handle->eventFd = -1;
  handle->pollClosed = true;
  MaybeDelete(handle);
}

void Release(RingHandle* handle) {
  handle->closed = true;
  handle->ring.Close();
  handle->onCompletions.Reset();
  handle->batch.Reset();
  handle->asyncContext.reset();
  if (handle->pollInited) {
    uv_poll_stop(&handle->poll);
    uv_close(reinterpret_cast<uv_handle_t*>(&handle->poll), OnPollClosed);
  } else if (handle->eventFd >= 0) {
    close(handle->eventFd);
    handle->eventFd = -1;
  }
}

void Finalize(Napi::Env, RingHandle* handle) {
  if (!handle->closed) Release(handle);
  handle->finalized = true;
  MaybeDelete(handle);
}

void Ref(RingHandle* handle, bool ref) {
  auto* uvHandle = reinterpret_cast<uv_handle_t*>(&handle->poll);
  if (ref) {
    uv_ref(uvHandle);
  } else {
    uv_unref(uvHandle);
  }
}

void CallJs(RingHandle* handle, napi_value batch, uint32_t count) {
  napi_env env = handle->env;
  napi_value args[2] = {batch, Napi::Number::New(env, count)};
  napi_value global;
  napi_value result;
  // napi_make_callback converts the receiver to an object; undefined would throw.
  napi_get_global(env, &global);
  napi_status status = napi_make_callback(env, *handle->asyncContext, global, handle->onCompletions.Value(), 2,
                                          args, &result);
  if (status == napi_pending_exception) {
    napi_value error;
    napi_get_and_clear_last_exception(env, &error);
    napi_fatal_exception(env, error);
  }
}

void Drain(RingHandle* handle) {
  Napi::HandleScope scope(handle->env);
  while (!handle->closed) {
    Napi::Int32Array batch = handle->batch.Value().As<Napi::Int32Array>();
    int32_t* out = batch.Data();
    const uint32_t slots = static_cast<uint32_t>(handle->partsLeft.size());
    const unsigned count = handle->ring.Reap(static_cast<unsigned>(batch.ElementLength() / 3), [&](const io_uring_cqe& cqe) {
      const uint64_t slot = cqe.user_data >> 1;
      if (slot >= slots || handle->partsLeft[slot] == 0) {
        napi_fatal_error("ringstream", NAPI_AUTO_LENGTH, "io_uring completion for a free slot", NAPI_AUTO_LENGTH);
      }
      // Freed before JS runs, so the callback can reuse the slot for queued work.
      if (--handle->partsLeft[slot] == 0) {
        handle->freeSlots.push_back(static_cast<uint32_t>(slot));
        handle->busy--;
      }
      out[0] = static_cast<int32_t>(slot);
      out[1] = cqe.res;
      out[2] = static_cast<int32_t>(cqe.user_data & kPartFsync);
      out += 3;
    });
    if (count == 0) break;
    CallJs(handle, batch, count);
  }
  // Unref'd while idle so that an open but unused ring never keeps the process alive.
  if (!handle->closed && handle->busy == 0) Ref(handle, false);
}

void OnPoll(uv_poll_t* poll, int, int) {
  auto* handle = static_cast<RingHandle*>(poll->data);
  uint64_t signals;
  // Read before draining: a CQE posted after the drain signals the eventfd again.
  if (read(handle->eventFd, &signals, sizeof signals) < 0 && errno != EAGAIN) {
    napi_fatal_error("ringstream", NAPI_AUTO_LENGTH, "read(eventfd) failed", NAPI_AUTO_LENGTH);
  }
  Drain(handle);
}

bool IsUint32In(const Napi::Value& value, uint32_t min, uint32_t max) {
  if (!value.IsNumber()) return false;
  const double number = value.As<Napi::Number>().DoubleValue();
  return number >= min && number <= max && std::floor(number) == number;
}

Napi::Value ThrowType(Napi::Env env, const char* message) {
  Napi::TypeError::New(env, message).ThrowAsJavaScriptException();
  return Napi::Value();
}

Napi::Value Create(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!IsUint32In(info[0], 1, kSlotsMax)) return ThrowType(env, "slots must be an integer in 1..4096");
  if (!info[1].IsFunction()) return ThrowType(env, "onCompletions must be a function");
  const uint32_t wanted = info[0].As<Napi::Number>().Uint32Value();

  auto handle = std::make_unique<RingHandle>(env);
  const char* syscall = nullptr;
  // Two SQEs per slot (a write and its linked fsync), so the SQ can never overflow; the
  // CQ is twice the SQ, so it cannot either.
  int error = handle->ring.Open(wanted * 2, &syscall);
  if (error != 0) {
    ErrnoError(env, error, syscall).ThrowAsJavaScriptException();
    return Napi::Value();
  }
  const uint32_t slots = handle->ring.SqEntries() / 2;
  handle->eventFd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (handle->eventFd < 0) {
    ErrnoError(env, errno, "eventfd").ThrowAsJavaScriptException();
    return Napi::Value();
  }
  error = handle->ring.RegisterEventFd(handle->eventFd);
  if (error != 0) {
    ErrnoError(env, error, "io_uring_register").ThrowAsJavaScriptException();
    return Napi::Value();
  }
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) return ThrowType(env, "no event loop");
  error = uv_poll_init(loop, &handle->poll, handle->eventFd);
  if (error != 0) {
    ErrnoError(env, -error, "uv_poll_init").ThrowAsJavaScriptException();
    return Napi::Value();
  }
  handle->pollInited = true;
  handle->poll.data = handle.get();
  uv_poll_start(&handle->poll, UV_READABLE, OnPoll);
  Ref(handle.get(), false);

  handle->partsLeft.assign(slots, 0);
  handle->freeSlots.reserve(slots);
  for (uint32_t slot = slots; slot > 0; slot--) handle->freeSlots.push_back(slot - 1);
  handle->iovecs.reset(new iovec[static_cast<size_t>(slots) * kIovMax]);
  handle->onCompletions = Napi::Persistent(info[1].As<Napi::Function>());
  handle->batch = Napi::Persistent(Napi::Int32Array::New(env, static_cast<size_t>(handle->ring.CqEntries()) * 3).As<Napi::Object>());
  handle->asyncContext = std::make_unique<Napi::AsyncContext>(env, "ringstream:uring");

  Napi::External<RingHandle> ring = Napi::External<RingHandle>::New(env, handle.get(), Finalize);
  napi_type_tag_object(env, ring, &kRingTag);
  handle.release();
  return ring;
}

// The ring argument, or nullptr with a JS exception pending.
RingHandle* Unwrap(const Napi::CallbackInfo& info) {
  bool tagged = false;
  if (info[0].IsExternal()) napi_check_object_type_tag(info.Env(), info[0], &kRingTag, &tagged);
  if (!tagged) {
    ThrowType(info.Env(), "not a ring");
    return nullptr;
  }
  RingHandle* handle = info[0].As<Napi::External<RingHandle>>().Data();
  if (handle->closed) {
    Napi::Error::New(info.Env(), "ring is closed").ThrowAsJavaScriptException();
    return nullptr;
  }
  return handle;
}

bool IsPosition(const Napi::Value& value) {
  if (!value.IsNumber()) return false;
  const double number = value.As<Napi::Number>().DoubleValue();
  return number >= 0 && number <= kPositionMax && std::floor(number) == number;
}

// A free slot expecting `parts` CQEs, or -1 (backpressure: JS queues until completions).
int32_t AcquireSlot(RingHandle* handle, uint8_t parts) {
  if (handle->freeSlots.empty()) return -1;
  const uint32_t slot = handle->freeSlots.back();
  handle->freeSlots.pop_back();
  handle->partsLeft[slot] = parts;
  if (handle->busy++ == 0) Ref(handle, true);
  return static_cast<int32_t>(slot);
}

void UndoSlot(RingHandle* handle, int32_t slot) {
  handle->partsLeft[slot] = 0;
  handle->freeSlots.push_back(static_cast<uint32_t>(slot));
  if (--handle->busy == 0) Ref(handle, false);
}

io_uring_sqe* Sqe(RingHandle* handle, int32_t slot, uint8_t opcode, int32_t fd, uint64_t part) {
  io_uring_sqe* sqe = handle->ring.NextSqe();
  // Two SQEs per slot were reserved at create; running out is a broken invariant.
  if (sqe == nullptr) napi_fatal_error("ringstream", NAPI_AUTO_LENGTH, "io_uring SQ overflow", NAPI_AUTO_LENGTH);
  sqe->opcode = opcode;
  sqe->fd = fd;
  sqe->user_data = (static_cast<uint64_t>(slot) << 1) | part;
  return sqe;
}

void LinkDatasync(RingHandle* handle, io_uring_sqe* first, int32_t slot, int32_t fd) {
  first->flags |= IOSQE_IO_LINK;
  io_uring_sqe* sync = Sqe(handle, slot, IORING_OP_FSYNC, fd, kPartFsync);
  sync->fsync_flags = IORING_FSYNC_DATASYNC;
}

Napi::Value PrepWritev(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RingHandle* handle = Unwrap(info);
  if (handle == nullptr) return Napi::Value();
  if (!IsUint32In(info[1], 0, INT32_MAX)) return ThrowType(env, "fd must be a non-negative integer");
  if (!info[2].IsArray()) return ThrowType(env, "buffers must be an array");
  if (!IsPosition(info[3])) return ThrowType(env, "position must be a safe non-negative integer");
  if (!IsUint32In(info[4], 0, kFlagDatasync | kFlagBackground)) return ThrowType(env, "flags must be in 0..3");
  const auto fd = static_cast<int32_t>(info[1].As<Napi::Number>().Int32Value());
  Napi::Array buffers = info[2].As<Napi::Array>();
  const uint32_t count = buffers.Length();
  if (count == 0 || count > kIovMax) return ThrowType(env, "buffers must hold 1..1024 Uint8Arrays");
  const uint32_t flags = info[4].As<Napi::Number>().Uint32Value();
  const bool datasync = (flags & kFlagDatasync) != 0;

  const int32_t slot = AcquireSlot(handle, datasync ? 2 : 1);
  if (slot < 0) return Napi::Number::New(env, -1);
  iovec* iov = &handle->iovecs[static_cast<size_t>(slot) * kIovMax];
  for (uint32_t i = 0; i < count; i++) {
    napi_value element;
    napi_typedarray_type type;
    size_t length = 0;
    void* data = nullptr;
    if (napi_get_element(env, buffers, i, &element) != napi_ok ||
        napi_get_typedarray_info(env, element, &type, &length, &data, nullptr, nullptr) != napi_ok ||
        type != napi_uint8_array) {
      UndoSlot(handle, slot);
      return ThrowType(env, "buffers must hold only Uint8Arrays");
    }
    iov[i].iov_base = data;
    iov[i].iov_len = length;
  }
  io_uring_sqe* sqe = Sqe(handle, slot, IORING_OP_WRITEV, fd, 0);
  if ((flags & kFlagBackground) != 0) sqe->flags |= IOSQE_ASYNC;
  sqe->addr = reinterpret_cast<uint64_t>(iov);
  sqe->len = count;
  sqe->off = static_cast<uint64_t>(info[3].As<Napi::Number>().Int64Value());
  if (datasync) LinkDatasync(handle, sqe, slot, fd);
  return Napi::Number::New(env, slot);
}

Napi::Value PrepRead(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RingHandle* handle = Unwrap(info);
  if (handle == nullptr) return Napi::Value();
  if (!IsUint32In(info[1], 0, INT32_MAX)) return ThrowType(env, "fd must be a non-negative integer");
  if (!info[2].IsTypedArray() || info[2].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    return ThrowType(env, "buffer must be a Uint8Array");
  }
  if (!IsPosition(info[3])) return ThrowType(env, "position must be a safe non-negative integer");
  Napi::Uint8Array buffer = info[2].As<Napi::Uint8Array>();
  if (buffer.ByteLength() > kLengthMax) {
    Napi::RangeError::New(env, "buffer is longer than one read may be").ThrowAsJavaScriptException();
    return Napi::Value();
  }
  const int32_t slot = AcquireSlot(handle, 1);
  if (slot < 0) return Napi::Number::New(env, -1);
  io_uring_sqe* sqe = Sqe(handle, slot, IORING_OP_READ, info[1].As<Napi::Number>().Int32Value(), 0);
  sqe->addr = reinterpret_cast<uint64_t>(buffer.Data());
  sqe->len = static_cast<uint32_t>(buffer.ByteLength());
  sqe->off = static_cast<uint64_t>(info[3].As<Napi::Number>().Int64Value());
  return Napi::Number::New(env, slot);
}

Napi::Value PrepFsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RingHandle* handle = Unwrap(info);
  if (handle == nullptr) return Napi::Value();
  if (!IsUint32In(info[1], 0, INT32_MAX)) return ThrowType(env, "fd must be a non-negative integer");
  if (!IsUint32In(info[2], 0, kFlagDatasync)) return ThrowType(env, "flags must be 0 or 1");
  const int32_t slot = AcquireSlot(handle, 1);
  if (slot < 0) return Napi::Number::New(env, -1);
  io_uring_sqe* sync = Sqe(handle, slot, IORING_OP_FSYNC, info[1].As<Napi::Number>().Int32Value(), 0);
  if (info[2].As<Napi::Number>().Uint32Value() == kFlagDatasync) sync->fsync_flags = IORING_FSYNC_DATASYNC;
  return Napi::Number::New(env, slot);
}

Napi::Value Submit(const Napi::CallbackInfo& info) {
  RingHandle* handle = Unwrap(info);
  if (handle == nullptr) return Napi::Value();
  unsigned left = 0;
  const int error = handle->ring.Submit(&left);
  // EAGAIN/EBUSY: the kernel is short of memory or CQ room; the SQEs stay queued.
  if (error != 0 && error != EAGAIN && error != EBUSY) {
    ErrnoError(info.Env(), error, "io_uring_enter").ThrowAsJavaScriptException();
    return Napi::Value();
  }
  return Napi::Number::New(info.Env(), left);
}

Napi::Value Close(const Napi::CallbackInfo& info) {
  RingHandle* handle = Unwrap(info);
  if (handle == nullptr) return Napi::Value();
  // The kernel may still write into buffers JS holds for in-flight requests.
  if (handle->busy != 0) {
    ErrnoError(info.Env(), EBUSY, "close").ThrowAsJavaScriptException();
    return Napi::Value();
  }
  Release(handle);
  return info.Env().Undefined();
}

Napi::Value LockFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!IsUint32In(info[0], 0, INT32_MAX)) return ThrowType(env, "fd must be a non-negative integer");
  const int fd = info[0].As<Napi::Number>().Int32Value();
  int rc;
  do {
    rc = flock(fd, LOCK_EX | LOCK_NB);
  } while (rc != 0 && errno == EINTR);
  return Napi::Number::New(env, rc == 0 ? 0 : errno);
}

// syncfs(2) off the event loop; `done` gets 0 or the errno.
class SyncFsWorker : public Napi::AsyncWorker {
 public:
  SyncFsWorker(Napi::Function& done, int fd) : Napi::AsyncWorker(done, "ringstream.syncFs"), fd_(fd) {}

  void Execute() override {
    int rc;
    do {
      rc = syncfs(fd_);
    } while (rc != 0 && errno == EINTR);
    errno_ = rc == 0 ? 0 : errno;
  }

  void OnOK() override { Callback().Call({Napi::Number::New(Env(), errno_)}); }

 private:
  const int fd_;
  int errno_ = 0;
};

Napi::Value SyncFs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!IsUint32In(info[0], 0, INT32_MAX)) return ThrowType(env, "fd must be a non-negative integer");
  if (!info[1].IsFunction()) return ThrowType(env, "done must be a function");
  Napi::Function done = info[1].As<Napi::Function>();
  (new SyncFsWorker(done, info[0].As<Napi::Number>().Int32Value()))->Queue();
  return env.Undefined();
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("create", Napi::Function::New(env, Create, "create"));
  exports.Set("prepWritev", Napi::Function::New(env, PrepWritev, "prepWritev"));
  exports.Set("prepRead", Napi::Function::New(env, PrepRead, "prepRead"));
  exports.Set("prepFsync", Napi::Function::New(env, PrepFsync, "prepFsync"));
  exports.Set("submit", Napi::Function::New(env, Submit, "submit"));
  exports.Set("close", Napi::Function::New(env, Close, "close"));
  exports.Set("lockFile", Napi::Function::New(env, LockFile, "lockFile"));
  exports.Set("syncFs", Napi::Function::New(env, SyncFs, "syncFs"));
  return exports;
}

}  // namespace ringstream

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return ringstream::Init(env, exports); }

NODE_API_MODULE(ringstream, InitAddon)
