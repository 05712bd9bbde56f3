import { describe, expect, it } from 'vitest';
import type { DeliveryJob } from '../core/types.ts';
import { buildEmail, classifySmtpError, emailContent, messageIdFor } from './provider-smtp.ts';

function job(over: Partial<DeliveryJob['notification']> = {}, deliveryId = 'd-0001'): DeliveryJob {
  return {
    deliveryId,
    leaseToken: 'lease',
    attempt: 1,
    channel: 'email',
    lane: 'normal',
    userId: 'u1',
    notification: {
      id: 'n-0001',
      category: 'comment.reply',
      priority: 'normal',
      title: 'Ada <replied> & more',
      body: 'First "line"\nsecond line\n\nNew paragraph <script>x</script>',
      data: {},
      groupKey: null,
      createdAt: new Date('2026-01-01T00:00:00Z'),
      ...over,
    },
    user: { id: 'u1', email: 'ada@example.com', phone: null, timezone: null, locale: null, webhookUrl: null },
  };
}

describe('email message builder', () => {
  it('subject is the title; the text part is title and body as written; the HTML part escapes both', () => {
    const c = emailContent(job());
    expect(c.subject).toBe('Ada <replied> & more');
    expect(c.text).toBe('Ada <replied> & more\n\nFirst "line"\nsecond line\n\nNew paragraph <script>x</script>');
    expect(c.html).toContain('<h1>Ada &#60;replied&#62; &#38; more</h1>');
    expect(c.html).toContain('<p>First &#34;line&#34;<br>\nsecond line</p>');
    expect(c.html).toContain('<p>New paragraph &#60;script&#62;x&#60;/script&#62;</p>');
    expect(c.html).not.toContain('<script>');
  });

  it('without a title the subject is the category, on one line; without a body the text is the title', () => {
    expect(emailContent(job({ title: null })).subject).toBe('comment.reply');
    expect(emailContent(job({ title: 'two\r\nlines' })).subject).toBe('two lines');
    const noBody = emailContent(job({ body: null }));
    expect(noBody.text).toBe('Ada <replied> & more');
    expect(noBody.html).not.toContain('<p>');
  });

  it('List-Unsubscribe and List-Unsubscribe-Post (RFC 8058) only when there is a link', () => {
    const from = 'notify@mail.example.org';
    const link = 'https://herald.example.com/v1/unsubscribe?token=abc.def';
    const withLink = buildEmail(job(), from, 'ada@example.com', emailContent(job()), link);
    expect(withLink.headers).toMatchObject({
      'List-Unsubscribe': `<${link}>`,
      'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
    });
    const without = buildEmail(job(), from, 'ada@example.com');
    expect(Object.keys(without.headers ?? {})).not.toContain('List-Unsubscribe');
    expect(Object.keys(without.headers ?? {})).not.toContain('List-Unsubscribe-Post');
  });

  it('Message-ID is derived from the delivery id and the From domain: the same for the same delivery', () => {
    const from = 'Herald <notify@mail.example.org>';
    const a = buildEmail(job(), from, 'ada@example.com');
    const b = buildEmail(job({ title: 'changed' }), from, 'ada@example.com');
    expect(a.messageId).toBe('<d-0001@mail.example.org>');
    expect(b.messageId).toBe(a.messageId);
    expect(buildEmail(job({}, 'd-0002'), from, 'ada@example.com').messageId).toBe('<d-0002@mail.example.org>');
    expect(messageIdFor('d-1', 'plain@example.net')).toBe('<d-1@example.net>');
    expect(a).toMatchObject({
      from,
      to: 'ada@example.com',
      subject: 'Ada <replied> & more',
      headers: { 'X-Herald-Notification-Id': 'n-0001', 'X-Herald-Delivery-Id': 'd-0001' },
    });
  });
});

describe('SMTP outcome classification', () => {
  const fail = (e: object) => classifySmtpError(Object.assign(new Error('x'), e), ['s3cret-pass']);

  it('4xx replies and connection failures are transient; 5xx replies are permanent', () => {
    expect(fail({ code: 'EENVELOPE', response: '451 4.3.0 try later', responseCode: 451 })).toMatchObject({
      permanent: false,
    });
    expect(fail({ code: 'EENVELOPE', response: '550 5.1.1 mailbox unknown', responseCode: 550 })).toMatchObject({
      permanent: true,
      error: expect.stringContaining('550 5.1.1 mailbox unknown'),
    });
    expect(fail({ code: 'EENVELOPE', response: '553 bad address', responseCode: 553 })).toMatchObject({
      permanent: true,
    });
    expect(fail({ code: 'ESOCKET', message: 'connect ECONNREFUSED 127.0.0.1:1' })).toMatchObject({ permanent: false });
    expect(fail({ code: 'ETIMEDOUT', message: 'Greeting never received' })).toMatchObject({ permanent: false });
    expect(fail({ code: 'EENVELOPE', message: 'Invalid recipient "x"' })).toMatchObject({ permanent: true });
  });

  it('a refused login is transient (the operator fixes it), and the password never shows', () => {
    const r = fail({ code: 'EAUTH', response: '535 bad credentials s3cret-pass', responseCode: 535 });
    expect(r).toMatchObject({ ok: false, permanent: false });
    expect(JSON.stringify(r)).not.toContain('s3cret-pass');
    expect(JSON.stringify(r)).toContain('535');
  });
});
