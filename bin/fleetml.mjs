#!/usr/bin/env node
// fleetml's executable: TypeScript runs through tsx everywhere (CLI, child processes, tests),
// so there is no build step between `npm ci` and a working command.
import { register } from 'tsx/esm/api';

register();
await import('./main.ts');
