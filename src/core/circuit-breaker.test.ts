import { describe, expect, it } from 'vitest';
import { CircuitBreaker } from './circuit-breaker.ts';

function breaker(failures = 3, openMs = 1000) {
  let now = 0;
  const b = new CircuitBreaker({ failures, openMs }, () => now);
  return { b, advance: (ms: number) => (now += ms) };
}

describe('CircuitBreaker', () => {
  it('opens after the configured transient failures in a row, not before', () => {
    const { b } = breaker(3);
    b.failed();
    b.failed();
    expect(b.state).toBe('closed');
    expect(b.allow()).toBe(true);
    b.failed();
    expect(b.state).toBe('open');
    expect(b.allow()).toBe(false);
    expect(b.status()).toMatchObject({ state: 'open', consecutiveFailures: 3, opened: 1 });
  });

  it('a success in between starts the count again', () => {
    const { b } = breaker(2);
    b.failed();
    b.succeeded();
    b.failed();
    expect(b.state).toBe('closed');
  });

  it('after openMs lets exactly one probe through; its success closes the breaker', () => {
    const { b, advance } = breaker(1, 1000);
    b.failed();
    advance(999);
    expect(b.allow()).toBe(false);
    advance(1);
    expect(b.state).toBe('half_open');
    expect(b.allow()).toBe(true);
    expect(b.allow()).toBe(false);
    b.succeeded();
    expect(b.state).toBe('closed');
    expect(b.allow()).toBe(true);
  });

  it('a failed probe opens it for another openMs', () => {
    const { b, advance } = breaker(1, 1000);
    b.failed();
    advance(1000);
    expect(b.allow()).toBe(true);
    b.failed();
    expect(b.state).toBe('open');
    expect(b.waitFor()).toBe(1000);
    expect(b.status().opened).toBe(2);
  });

  it('a probe released without an answer (a skip) lets the next send probe', () => {
    const { b, advance } = breaker(1, 10);
    b.failed();
    advance(10);
    expect(b.allow()).toBe(true);
    b.released();
    expect(b.allow()).toBe(true);
  });
});
