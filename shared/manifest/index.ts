export * from './canonical.js';
export * from './freshness.js';
export * from './golden.js';
export * from './sign.js';
export * from './target-sign.js';
