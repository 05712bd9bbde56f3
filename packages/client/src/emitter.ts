/**
 * A small typed event emitter that runs anywhere (no Node `EventEmitter`). Listeners run in the
 * order they were added; one that throws does not stop the others nor the emitter's owner: the
 * error goes to the `error` listeners if there are any (and the event is not `error` itself),
 * otherwise it is rethrown on a fresh task so it surfaces as an uncaught error.
 */

export type Listener<T> = (payload: T) => void;

export class TypedEmitter<Events extends { error: Error }> {
  private readonly listeners = new Map<keyof Events, Set<Listener<never>>>();

  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof Events>(event: K, listener: Listener<Events[K]>): () => void {
    let set = this.listeners.get(event);
    if (!set) {
      set = new Set();
      this.listeners.set(event, set);
    }
    set.add(listener as Listener<never>);
    return () => this.off(event, listener);
  }

  /** Adds a listener that is removed after its first call. */
  once<K extends keyof Events>(event: K, listener: Listener<Events[K]>): () => void {
    const off = this.on(event, (payload) => {
      off();
      listener(payload);
    });
    return off;
  }

  off<K extends keyof Events>(event: K, listener: Listener<Events[K]>): void {
    this.listeners.get(event)?.delete(listener as Listener<never>);
  }

  listenerCount(event: keyof Events): number {
    return this.listeners.get(event)?.size ?? 0;
  }

  protected emit<K extends keyof Events>(event: K, payload: Events[K]): void {
    const set = this.listeners.get(event);
    if (!set) return;
    for (const listener of [...set]) {
      try {
        (listener as Listener<Events[K]>)(payload);
      } catch (e) {
        this.listenerFailed(event, e);
      }
    }
  }

  private listenerFailed(event: keyof Events, e: unknown): void {
    const error = e instanceof Error ? e : new Error(String(e));
    if (event !== 'error' && this.listenerCount('error') > 0) {
      this.emit('error', error as Events['error']);
    } else {
      setTimeout(() => {
        throw error;
      }, 0);
    }
  }
}
