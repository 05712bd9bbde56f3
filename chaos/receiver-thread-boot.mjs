// The entry of receiver-thread.ts's worker thread: TypeScript through tsx, whatever runs the caller.
import { register } from 'tsx/esm/api';

register();
await import('./receiver-thread.ts');
