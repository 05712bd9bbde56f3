/** @herald/client: real-time in-app notifications and the inbox of one Herald user. */
export { type BackoffOptions, backoffCeiling, backoffDelay } from './backoff.ts';
export { HeraldClient } from './client.ts';
export { type Listener, TypedEmitter } from './emitter.ts';
export { HeraldApiError, HeraldRealtimeError } from './errors.ts';
export { Inbox, type InboxListOptions } from './inbox.ts';
export {
  type ClientMessage,
  CloseCode,
  type ConnectionState,
  type ConnectionStatus,
  type FetchLike,
  type HeraldClientEvents,
  type HeraldClientOptions,
  type HeraldLatest,
  type HeraldNotification,
  type InboxItem,
  type InboxPage,
  type JsonValue,
  type Priority,
  type ReadSelection,
  type ServerMessage,
  type WebSocketConstructor,
  type WebSocketLike,
} from './types.ts';
