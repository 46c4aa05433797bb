import { describe, expect, it } from 'vitest';
import { el } from './tree.ts';
import { fromXml, toXml, XmlParseError } from './xml.ts';

describe('toXml / fromXml', () => {
  it('renders the root page as default namespace and the others with prefixes', () => {
    const doc = el('Ping', 'Ping', [el('Ping', 'Status', '1'), el('AirSync', 'SyncKey', '0')]);
    expect(toXml(doc, { declaration: false, indent: '' })).toBe(
      '<Ping xmlns="Ping" xmlns:airsync="AirSync"><Status>1</Status><airsync:SyncKey>0</airsync:SyncKey></Ping>',
    );
  });

  it('round-trips a document with several namespaces, binary content and escapes', () => {
    const doc = el('AirSync', 'Sync', [
      el('AirSync', 'Collections', [
        el('AirSync', 'Collection', [
          el('AirSync', 'SyncKey', '1'),
          el('AirSync', 'Commands', [
            el('AirSync', 'Add', [
              el('AirSync', 'ServerId', '5:1'),
              el('AirSync', 'ApplicationData', [
                el('Email', 'Subject', 'a < b & c > d'),
                el('Email2', 'ConversationId', new Uint8Array([0, 1, 2, 255])),
                el('AirSyncBase', 'Body', [el('AirSyncBase', 'Data', 'line 1\r\nline 2\r\n')]),
              ]),
            ]),
          ]),
          el('AirSync', 'MoreAvailable'),
        ]),
      ]),
    ]);
    const xml = toXml(doc);
    expect(xml).toContain(
      '<Sync xmlns="AirSync" xmlns:airsyncbase="AirSyncBase" xmlns:email="Email" xmlns:email2="Email2">',
    );
    expect(xml).toContain('<email2:ConversationId>AAEC/w==</email2:ConversationId>');
    expect(xml).toContain('a &lt; b &amp; c &gt; d');
    expect(fromXml(xml)).toEqual(doc);
  });

  it('keeps content XML cannot carry as text behind a base64 marker', () => {
    const doc = el('Email', 'Subject', 'bell\u0007');
    const xml = toXml(doc);
    expect(xml).toContain('<!--text base64-->');
    expect(fromXml(xml)).toEqual(doc);
    const bytes = el('AirSyncBase', 'Data', new Uint8Array([0xff, 0xfe]));
    expect(fromXml(toXml(bytes))).toEqual(bytes);
  });

  it('renders readable opaque text as text', () => {
    expect(toXml(el('AirSyncBase', 'Data', new TextEncoder().encode('hello')), { declaration: false })).toContain(
      '>hello<',
    );
  });

  it('cuts the values of the given tags so that the XML still parses, base64 to whole groups', () => {
    const doc = el('AirSync', 'Sync', [
      el('AirSyncBase', 'Data', `${'a'.repeat(20)}&b`),
      el('ItemOperations', 'Data', new Uint8Array(300).fill(0xff)),
      el('Email', 'Subject', 'x'.repeat(50)),
    ]);
    const cut = { tags: new Set(['Data']), maxLength: 22 };
    const xml = toXml(doc, { cut });
    expect(xml).toContain(`<airsyncbase:Data>${'a'.repeat(20)}<!--cut: 26 chars--></airsyncbase:Data>`);
    expect(xml).toContain('<!--opaque base64-->////////////////////<!--cut: 400 chars-->');
    expect(xml).toContain('x'.repeat(50));
    const back = fromXml(xml);
    expect(back.children[0]?.text).toBe('a'.repeat(20));
    expect(back.children[1]?.opaque).toEqual(new Uint8Array(15).fill(0xff));
    expect(toXml(doc, { cut: { tags: cut.tags, maxLength: 0 } })).toContain('<airsyncbase:Data><!--cut: 26 chars-->');
  });

  it('redacts passwords and cuts long values for logs', () => {
    const doc = el('Settings', 'DevicePassword', [el('Settings', 'Set', [el('Settings', 'Password', 'hunter2')])]);
    const xml = toXml(doc, { redact: true });
    expect(xml).not.toContain('hunter2');
    expect(xml).toContain('<Password>***</Password>');
    expect(toXml(el('Email', 'Subject', 'x'.repeat(100)), { maxValueLength: 10 })).toContain('xxxxxxxxxx…(100 chars)');
  });

  it("accepts libwbxml's namespace spelling and either case of a namespace", () => {
    expect(fromXml('<Ping xmlns="Ping:"><Status>1</Status></Ping>')).toEqual(
      el('Ping', 'Ping', [el('Ping', 'Status', '1')]),
    );
    expect(
      fromXml('<Search xmlns="Search" xmlns:g="GAL"><g:DisplayName>A</g:DisplayName></Search>').children[0]!.ns,
    ).toBe('Gal');
  });

  it('rejects what is not ActiveSync XML', () => {
    expect(() => fromXml('<Ping><Status>1</Status></Ping>')).toThrow(XmlParseError);
    expect(() => fromXml('<Ping xmlns="Ping"><Nope/></Ping>')).toThrow(/no tag Nope/);
    expect(() => fromXml('<Ping xmlns="Ping" id="1"/>')).toThrow(/attribute/);
    expect(() => fromXml('<Ping xmlns="Ping">')).toThrow(XmlParseError);
    expect(() => fromXml('<!DOCTYPE x [<!ENTITY a "aaaa">]><Ping xmlns="Ping">&a;</Ping>')).toThrow(XmlParseError);
  });
});
