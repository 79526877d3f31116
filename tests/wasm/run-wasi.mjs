// Runs a wasm32-wasi program under node (tests):
//   node --single-threaded run-wasi.mjs prog.wasm [args]
// Exits with the program's exit status. --single-threaded: see tests/suites/wasm.sh.
import { readFileSync } from 'node:fs';
import { WASI } from 'node:wasi';
process.removeAllListeners('warning');   // node warns that WASI is experimental
const wasi = new WASI({ version: 'preview1', args: process.argv.slice(2), env: {}, returnOnExit: true });
const mod = await WebAssembly.compile(readFileSync(process.argv[2]));
const inst = await WebAssembly.instantiate(mod, wasi.getImportObject());
process.exitCode = wasi.start(inst);
