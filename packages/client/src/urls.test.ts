import { describe, expect, it } from 'vitest';
import { httpBaseUrl, realtimeUrl } from './urls.ts';

describe('URLs derived from the url option', () => {
  it.each([
    ['http://127.0.0.1:8080', 'ws://127.0.0.1:8080/v1/realtime', 'http://127.0.0.1:8080'],
    ['http://127.0.0.1:8080/', 'ws://127.0.0.1:8080/v1/realtime', 'http://127.0.0.1:8080'],
    ['ws://h:1', 'ws://h:1/v1/realtime', 'http://h:1'],
    ['wss://h.example', 'wss://h.example/v1/realtime', 'https://h.example'],
    ['https://h.example/herald/', 'wss://h.example/herald/v1/realtime', 'https://h.example/herald'],
    ['wss://h.example/herald/v1/realtime', 'wss://h.example/herald/v1/realtime', 'https://h.example/herald'],
    ['wss://h.example/v1/realtime?token=old#x', 'wss://h.example/v1/realtime', 'https://h.example'],
  ])('%s', (url, ws, http) => {
    expect(realtimeUrl(url, 't', null)).toBe(`${ws}?token=t`);
    expect(httpBaseUrl(url)).toBe(http);
  });

  it('adds after when there is a resume point, and encodes the token', () => {
    expect(realtimeUrl('ws://h', 'a+b/c=', 0)).toBe('ws://h/v1/realtime?token=a%2Bb%2Fc%3D&after=0');
    expect(new URL(realtimeUrl('ws://h', 'x.y.z', 42)).searchParams.get('after')).toBe('42');
  });

  it('refuses other schemes', () => {
    expect(() => realtimeUrl('ftp://h', 't', null)).toThrow(/ws:/);
  });
});
