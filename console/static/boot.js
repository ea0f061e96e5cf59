// Loads the console's WebAssembly. An external module (not an inline
// script) so the Content-Security-Policy allows only our own scripts.
import init from '/console/console.js';
await init({ module_or_path: '/console/console_bg.wasm' });
