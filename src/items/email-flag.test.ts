import { describe, expect, it } from 'vitest';
import { el } from '../wbxml/tree.ts';
import { flagRequestOf, flagToDevice, isFlagged } from './email-flag.ts';

const active = el('Email', 'Flag', [
  el('Email', 'Status', '2'),
  el('Email', 'FlagType', 'Flag for follow up'),
  el('Tasks', 'DueDate', '2026-02-24T08:00:00.000Z'),
  el('Tasks', 'Subject', 'x'.repeat(300)),
]);

describe('flag details', () => {
  it('keeps the known fields of an active or complete flag, drops a cleared one, refuses another Status', () => {
    const request = flagRequestOf(active);
    expect(request).toEqual({
      flagged: true,
      details: {
        status: '2',
        fields: [
          ['Email', 'Status', '2'],
          ['Email', 'FlagType', 'Flag for follow up'],
          ['Tasks', 'DueDate', '2026-02-24T08:00:00.000Z'],
        ],
      },
    });
    expect(flagRequestOf(el('Email', 'Flag', [el('Email', 'Status', '1')]))).toMatchObject({ flagged: false });
    expect(flagRequestOf(el('Email', 'Flag'))).toEqual({ flagged: false, details: undefined });
    expect(flagRequestOf(el('Email', 'Flag', [el('Email', 'Status', '0')]))).toEqual({
      flagged: false,
      details: undefined,
    });
    expect(flagRequestOf(el('Email', 'Flag', [el('Email', 'Status', '3')]))).toBe('invalid');
  });

  it('sends the details back while IMAP agrees, and IMAP’s state when another client changed it', () => {
    const request = flagRequestOf(active);
    if (request === 'invalid' || !request.details) throw new Error('no details');
    expect(flagToDevice(true, request.details).keep).toBe(request.details);
    expect(flagToDevice(true, request.details).element.children).toHaveLength(3);
    expect(flagToDevice(false, request.details)).toEqual({ element: el('Email', 'Flag'), keep: undefined });
    const complete = { status: '1' as const, fields: [['Email', 'Status', '1'] as ['Email', string, string]] };
    expect(flagToDevice(false, complete).keep).toBe(complete);
    expect(flagToDevice(true, complete).keep).toBeUndefined();
    expect(isFlagged(new Set(['\\FLAGGED']))).toBe(true);
  });
});
