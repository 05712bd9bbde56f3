/**
 * The one line every scenario ends with, and what decides it:
 *
 *   VERDICT worker-kill: sent=20000 delivered=20000 lost=0 duplicated=3 (in flight at kills ≤ 96) PASS
 *
 * A verdict passes when nothing was lost, the duplicates stay within their bound (when the scenario
 * gives one; none given means none allowed) and every further check holds. A failing verdict names
 * each reason after FAIL, so the line alone says what went wrong.
 */
export interface VerdictInput {
  scenario: string;
  /** What should have arrived (accepted deliveries, or seqs expected). */
  sent: number;
  /** What arrived at least once. */
  delivered: number;
  lost: number;
  /** Arrivals beyond the first of the same id. */
  duplicated: number;
  /** Most duplicates allowed and where the bound comes from; absent: 0 allowed. */
  duplicateBound?: { max: number; why: string };
  /** Printed as key=value after the counts. */
  facts?: Record<string, string | number>;
  /** Further conditions: a false one fails the verdict with `failure` as a reason. */
  checks?: { ok: boolean; failure: string }[];
}

export interface Verdict {
  pass: boolean;
  line: string;
  reasons: string[];
}

export function verdict(v: VerdictInput, print: (line: string) => void = console.log): Verdict {
  const reasons: string[] = [];
  if (v.lost > 0) reasons.push(`${v.lost} lost`);
  if (v.delivered + v.lost < v.sent) reasons.push(`${v.sent - v.delivered - v.lost} unaccounted for`);
  const maxDup = v.duplicateBound?.max ?? 0;
  if (v.duplicated > maxDup) reasons.push(`${v.duplicated} duplicates > ${maxDup} allowed`);
  for (const c of v.checks ?? []) if (!c.ok) reasons.push(c.failure);
  const bound = v.duplicateBound ? ` (${v.duplicateBound.why} ≤ ${v.duplicateBound.max})` : '';
  const facts = Object.entries(v.facts ?? {})
    .map(([k, x]) => ` ${k}=${x}`)
    .join('');
  const pass = reasons.length === 0;
  const line =
    `VERDICT ${v.scenario}: sent=${v.sent} delivered=${v.delivered} lost=${v.lost} duplicated=${v.duplicated}` +
    `${bound}${facts} ${pass ? 'PASS' : `FAIL: ${reasons.join('; ')}`}`;
  print(line);
  return { pass, line, reasons };
}
