#!/usr/bin/env node
// Loads the TypeScript CLI in this process through tsx (no build step, no wrapper process:
// signals reach Herald itself).
import { register } from 'tsx/esm/api';

register();
await import('../src/cli.ts');
