import { describe, expect, it } from 'vitest';
import { el } from '../wbxml/tree.ts';
import { optionsForClass, parseCollectionOptions } from './options.ts';

// Two blocks as Android sends them (MS-ASCMD §2.2.3.125.6): SMS first, then the folder's own.
const sms = el('AirSync', 'Options', [
  el('AirSync', 'Class', 'SMS'),
  el('AirSync', 'FilterType', '0'),
  el('AirSyncBase', 'BodyPreference', [el('AirSyncBase', 'Type', '1')]),
]);
const email = el('AirSync', 'Options', [
  el('AirSync', 'FilterType', '3'),
  el('AirSync', 'Conflict', '1'),
  el('AirSync', 'MIMESupport', '2'),
  el('AirSync', 'MIMETruncation', '1'),
  el('RightsManagement', 'RightsManagementSupport', '1'),
  el('AirSyncBase', 'BodyPreference', [el('AirSyncBase', 'Type', '2'), el('AirSyncBase', 'TruncationSize', '51200')]),
]);

describe('parseCollectionOptions / optionsForClass', () => {
  it('no Options blocks: undefined, so the stored ones stay', () => {
    expect(parseCollectionOptions([])).toBeUndefined();
  });

  it('keeps a classed block apart, whatever the order, and picks the one for the folder', () => {
    const parsed = parseCollectionOptions([sms, email])!;
    const own = {
      filterType: 3,
      conflict: 1,
      mimeSupport: 2,
      mimeTruncation: 1,
      bodyPreferences: [{ type: 2, truncationSize: 51200 }],
    };
    expect(optionsForClass(parsed, 'Email')).toEqual(own);
    expect(optionsForClass(parseCollectionOptions([email, sms])!, 'Email')).toEqual(own);
    expect(optionsForClass(parsed, 'SMS')).toEqual({ filterType: 0, bodyPreferences: [{ type: 1 }] });
  });

  it('a block naming the folder class is that class’s', () => {
    const calendar = el('AirSync', 'Options', [el('AirSync', 'Class', 'Calendar'), el('AirSync', 'FilterType', '4')]);
    expect(optionsForClass(parseCollectionOptions([calendar])!, 'Calendar')).toEqual({ filterType: 4 });
    // Only another class's block: none of it applies.
    expect(optionsForClass(parseCollectionOptions([sms])!, 'Email')).toEqual({});
  });
});
