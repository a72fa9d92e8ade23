/* global process */
// Preloaded into the measured server by bench/memory.ts --gc (with --expose-gc): SIGUSR2 runs a
// full garbage collection, so RSS is read without the garbage a push left behind (whose size
// depends on when V8 happened to collect, not on what the streams hold).
process.on('SIGUSR2', () => {
  if (typeof globalThis.gc === 'function') globalThis.gc();
});
