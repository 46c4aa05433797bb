import { describe, expect, it } from 'vitest';
import type { OofSettings } from '../../state/types.ts';
import { buildVacationScript, sieveString } from './vacation.ts';

const asText = (m: OofSettings['messages'][number]): string => m.replyMessage;

describe('vacation script', () => {
  it('quotes " and \\ in Sieve strings and keeps line breaks', () => {
    expect(sieveString('say "hi" \\ bye\nnext')).toBe('"say \\"hi\\" \\\\ bye\nnext"');
  });

  it('prefers the internal message and says nothing when Oof is off or no message is enabled', () => {
    const oof: OofSettings = {
      state: 1,
      applied: false,
      messages: [
        { audience: 'externalUnknown', enabled: true, replyMessage: 'external', bodyType: 'Text' },
        { audience: 'internal', enabled: true, replyMessage: 'internal "x"', bodyType: 'Text' },
      ],
    };
    expect(buildVacationScript(oof, 'Auto', asText)).toBe(
      'require ["vacation"];\r\nvacation :days 1 :subject "Auto" "internal \\"x\\"";\r\n',
    );
    expect(buildVacationScript({ ...oof, messages: [oof.messages[0]!] }, 'Auto', asText)).toContain('"external"');
    expect(buildVacationScript({ ...oof, state: 0 }, 'Auto', asText)).toBeUndefined();
    expect(
      buildVacationScript({ ...oof, messages: oof.messages.map((m) => ({ ...m, enabled: false })) }, 'Auto', asText),
    ).toBeUndefined();
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
      'Auto',
      asText,
    );
    expect(script).toContain('require ["vacation", "date", "relational"];');
    expect(script).toContain('currentdate :zone "+0000" :value "ge" "iso8601" "2026-12-01T08:00:00Z"');
    expect(script).toContain('currentdate :zone "+0000" :value "lt" "iso8601" "2026-12-05T17:30:00Z"');
  });
});
