// scripts/platform.mjs — this machine's napi-rs platform name (linux-x64-gnu, …), for the
// install and prebuild scripts. They run before dist/ exists, so they cannot share
// src/io/native-loader.ts's platformName(); keep the two in step.

export function platformName() {
  const libc = process.report?.getReport().header.glibcVersionRuntime === undefined ? 'musl' : 'gnu'
  return `${process.platform}-${process.arch}-${libc}`
}
