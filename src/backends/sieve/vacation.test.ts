import { describe, expect, it } from 'vitest';
import type { OofSettings } from '../../state/types.ts';
import { buildVacationScript, restoredScriptName, sieveString } from './vacation.ts';

const content = {
  subject: 'Auto',
  internalDomain: 'example.test',
  toText: (m: OofSettings['messages'][number]) => m.replyMessage,
};

const oof: OofSettings = {
  state: 1,
  applied: false,
  messages: [
    { audience: 'externalUnknown', enabled: true, replyMessage: 'external', bodyType: 'Text' },
    { audience: 'internal', enabled: true, replyMessage: 'internal "x"', bodyType: 'Text' },
  ],
};

describe('vacation script', () => {
  it('quotes " and \\ in Sieve strings and keeps line breaks', () => {
    expect(sieveString('say "hi" \\ bye\nnext')).toBe('"say \\"hi\\" \\\\ bye\nnext"');
  });

  it('answers internal senders (by From domain) and others each with their own message', () => {
    expect(buildVacationScript(oof, content)).toBe(
      [
        'require ["vacation"];',
        'if address :domain :is "from" "example.test" {',
        '  vacation :days 1 :subject "Auto" "internal \\"x\\"";',
        '} else {',
        '  vacation :days 1 :subject "Auto" "external";',
        '}',
        '',
      ].join('\r\n'),
    );
    const externalOnly = buildVacationScript({ ...oof, messages: [oof.messages[0]!] }, content);
    expect(externalOnly).toContain('if not address :domain :is "from" "example.test" {');
    expect(externalOnly).not.toContain('internal');
    const noDomain = buildVacationScript(oof, { subject: 'Auto', toText: content.toText });
    expect(noDomain).toBe('require ["vacation"];\r\nvacation :days 1 :subject "Auto" "external";\r\n');
  });

  it('says nothing when Oof is off or no message is enabled', () => {
    expect(buildVacationScript({ ...oof, state: 0 }, content)).toBeUndefined();
    expect(
      buildVacationScript({ ...oof, messages: oof.messages.map((m) => ({ ...m, enabled: false })) }, content),
    ).toBeUndefined();
  });

  it("includes the user's own script first and names it for restoring", () => {
    const script = buildVacationScript(oof, content, 'my "rules"')!;
    expect(script).toContain('require ["vacation", "include"];\r\ninclude :personal "my \\"rules\\"";\r\nif address');
    expect(restoredScriptName(script)).toBe('my "rules"');
    expect(restoredScriptName(buildVacationScript(oof, content)!)).toBeUndefined();
  });

  it('guards a scheduled window with currentdate tests in UTC', () => {
    const script = buildVacationScript(
      {
        state: 2,
        startTime: '2026-12-01T08:00:00.000Z',
        endTime: '2026-12-05T17:30:00.000Z',
        applied: false,
        messages: [{ audience: 'internal', enabled: true, replyMessage: 'away', bodyType: 'Text' }],
      },
      content,
    );
    expect(script).toContain('require ["vacation", "date", "relational"];');
    expect(script).toContain('currentdate :zone "+0000" :value "ge" "iso8601" "2026-12-01T08:00:00Z"');
    expect(script).toContain('currentdate :zone "+0000" :value "lt" "iso8601" "2026-12-05T17:30:00Z"');
    expect(script).toContain('    vacation :days 1 :subject "Auto" "away";');
  });
});
