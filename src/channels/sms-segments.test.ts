import { describe, expect, it } from 'vitest';
import { smsSegments } from './sms-segments.ts';

const a = (n: number) => 'a'.repeat(n);
const e = (n: number) => 'é'.repeat(n); // in the GSM-7 basic table
const euro = (n: number) => '€'.repeat(n); // GSM-7 extension: two septets
const cyr = (n: number) => 'Ж'.repeat(n); // not GSM-7: UCS-2
const emoji = (n: number) => '😀'.repeat(n); // a surrogate pair: two UCS-2 units

describe('smsSegments', () => {
  it.each([
    ['empty', '', 'GSM-7', 0, 1],
    ['1 char', 'a', 'GSM-7', 1, 1],
    ['160 GSM-7', a(160), 'GSM-7', 160, 1],
    ['161 GSM-7', a(161), 'GSM-7', 161, 2],
    ['306 GSM-7', a(306), 'GSM-7', 306, 2],
    ['307 GSM-7', a(307), 'GSM-7', 307, 3],
    ['459 GSM-7', a(459), 'GSM-7', 459, 3],
    ['460 GSM-7', a(460), 'GSM-7', 460, 4],
    ['accented letters of the basic table stay GSM-7', e(160), 'GSM-7', 160, 1],
    ['all of the basic table', '@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ!"#¤%&\'()*+,-./:;<=>?¡ÄÖÑÜ§¿äöñüà', 'GSM-7', 62, 1],
    ['newline and carriage return are GSM-7', 'a\r\nb', 'GSM-7', 4, 1],
    ['80 extension chars = 160 septets', euro(80), 'GSM-7', 160, 1],
    ['81 extension chars = 162 septets', euro(81), 'GSM-7', 162, 2],
    ['159 + one extension char = 161 septets', `${a(159)}{`, 'GSM-7', 161, 2],
    ['158 + one extension char = 160 septets', `${a(158)}}`, 'GSM-7', 160, 1],
    ['every extension char counts double', '^{}\\[~]|€\f', 'GSM-7', 20, 1],
    // 306 septets would fit 2 × 153, but the € cannot straddle the boundary after 152.
    ['an escaped pair is not split: 152 + € + 152 = 306 septets', `${a(152)}€${a(152)}`, 'GSM-7', 306, 3],
    ['a pair that fits exactly: 151 + € then 153', `${a(151)}€${a(153)}`, 'GSM-7', 306, 2],
    ['70 UCS-2', cyr(70), 'UCS-2', 70, 1],
    ['71 UCS-2', cyr(71), 'UCS-2', 71, 2],
    ['134 UCS-2', cyr(134), 'UCS-2', 134, 2],
    ['135 UCS-2', cyr(135), 'UCS-2', 135, 3],
    ['one non-GSM char makes the whole text UCS-2', `${a(69)}Ж`, 'UCS-2', 70, 1],
    ['a lowercase ç is not GSM-7 (only Ç is)', `${a(100)}ç`, 'UCS-2', 101, 2],
    ['an emoji is two UCS-2 units', emoji(35), 'UCS-2', 70, 1],
    ['36 emoji = 72 units', emoji(36), 'UCS-2', 72, 2],
    // 134 units would fit 2 × 67, but the emoji cannot straddle the boundary after 66.
    ['a surrogate pair is not split: 66 + emoji + 66 = 134 units', `${cyr(66)}😀${cyr(66)}`, 'UCS-2', 134, 3],
    ['extension chars count once in UCS-2', `Ж${euro(69)}`, 'UCS-2', 70, 1],
  ])('%s', (_name, text, encoding, units, segments) => {
    expect(smsSegments(text)).toEqual({ encoding, units, segments });
  });
});
