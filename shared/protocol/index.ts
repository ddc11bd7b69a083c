export * from './block-frame.js';
export * from './codec.js';
export * from './inference.js';
export * from './schemas.js';
export * from './topics.js';
