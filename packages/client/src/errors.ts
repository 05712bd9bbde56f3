/** Errors the client raises or emits. */

/** An HTTP answer other than 2xx, with Herald's error body (`{"error": {"code", "message", "details"}}`) when there is one. */
export class HeraldApiError extends Error {
  override readonly name = 'HeraldApiError';

  constructor(
    readonly status: number,
    /** `HERALD_ERR_…`, or `HTTP_<status>` when the body was not Herald's error JSON. */
    readonly code: string,
    message: string,
    readonly details: unknown = null,
  ) {
    super(message);
  }
}

/** A `{"type":"error"}` frame from the server: the client sent something it could not take. */
export class HeraldRealtimeError extends Error {
  override readonly name = 'HeraldRealtimeError';

  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}
