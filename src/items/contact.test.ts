import ICAL from 'ical.js';
import { describe, expect, it } from 'vitest';
import { loadDavFixture } from '../../test/fixtures/dav/fixtures.ts';
import { comparable, libwbxmlDecode, parseLibwbxmlXml } from '../../test/wbxml/libwbxml.ts';
import { tagCode } from '../wbxml/codepages.ts';
import { encodeWbxml } from '../wbxml/encoder.ts';
import { child, el, textOf, type WbxmlElement } from '../wbxml/tree.ts';
import {
  contactApplicationData,
  contactFromApplicationData,
  MAX_PICTURE_BYTES,
  type ContactOutputOptions,
} from './contact.ts';

const IOS = loadDavFixture('ios-contact.vcf');
const V4 = loadDavFixture('nextcloud-contact-v4.vcf');

function toDevice(vcard: string, options: Partial<ContactOutputOptions> = {}): WbxmlElement[] {
  const app = contactApplicationData(vcard, {
    version: '14.1',
    bodyPreferences: [],
    timezone: 'Europe/Stockholm',
    ...options,
  });
  if (!app) throw new Error('not a vCard');
  return app;
}

function appData(items: WbxmlElement[]): WbxmlElement {
  return el('AirSync', 'ApplicationData', items);
}

/** Element name → text (containers as their children's texts joined by |). */
function fields(items: WbxmlElement[]): Record<string, string> {
  return Object.fromEntries(
    items.map((e) => [
      e.tag,
      e.children.length > 0 && e.tag !== 'Body'
        ? e.children.map(textOf).join('|')
        : e.tag === 'Body'
          ? textOf(child(e, 'Data', 'AirSyncBase'))
          : textOf(e),
    ]),
  );
}

function card(text: string): ICAL.Component {
  return new ICAL.Component(ICAL.parse(text));
}

describe('vCard → Contacts', () => {
  it('converts the iOS card: names, company, e-mails, phones, addresses, dates, relations, IM, photo and note', () => {
    const app = toDevice(IOS);
    expect(fields(app)).toEqual({
      LastName: 'Lindqvist',
      FirstName: 'Maja',
      MiddleName: 'Elin',
      Title: 'Dr.',
      Suffix: 'PhD',
      CompanyName: 'Nordlys Biotech AB',
      Department: 'Research & Development',
      FileAs: 'Dr. Maja Elin Lindqvist PhD',
      JobTitle: 'Head of Genomics',
      WebPage: 'https://nordlys.example/people/maja',
      YomiFirstName: 'Maja',
      YomiLastName: 'Lindkvist',
      NickName: 'Majsan',
      Email1Address: 'maja.lindqvist@nordlys.example',
      Email2Address: 'maja.l@posteo.example',
      Email3Address: 'maja@lindqvist.example',
      BusinessPhoneNumber: '+46 8 555 010 00',
      HomePhoneNumber: '+46 8 555 020 30',
      MobilePhoneNumber: '+46 70 123 45 67',
      PagerNumber: '+46 74 000 11 22',
      AssistantPhoneNumber: '+46 8 555 010 42',
      BusinessFaxNumber: '+46 8 555 010 99',
      CompanyMainPhone: '+46 8 555 010 01',
      BusinessAddressStreet: 'Banérgatan 16\nPlan 4',
      BusinessAddressCity: 'Stockholm',
      BusinessAddressPostalCode: '115 23',
      BusinessAddressCountry: 'Sweden',
      HomeAddressStreet: 'Sveavägen 44',
      HomeAddressCity: 'Stockholm',
      HomeAddressPostalCode: '111 34',
      HomeAddressCountry: 'Sweden',
      OtherAddressStreet: 'Storgatan 2',
      OtherAddressCity: 'Visby',
      OtherAddressState: 'Gotland',
      OtherAddressPostalCode: '621 56',
      OtherAddressCountry: 'Sweden',
      IMAddress: 'skype:maja.lindqvist',
      IMAddress2: 'xmpp:maja@jabber.example',
      // Midnight in Stockholm (summer time), in UTC.
      Birthday: '1984-07-20T22:00:00.000Z',
      Anniversary: '2012-06-15T22:00:00.000Z',
      Spouse: 'Anders Lindqvist',
      AssistantName: 'Karin Berg',
      ManagerName: 'Johan Ek',
      Children: 'Astrid|Olle',
      Categories: 'Work|Conference',
      Picture: expect.stringMatching(/^\/9j\//) as unknown as string,
      Body: 'Met at ASHG 2019.\nPrefers Signal, not WhatsApp.',
    });
    // Contacts2 elements are in their namespace.
    expect(app.filter((e) => e.ns === 'Contacts2').map((e) => e.tag)).toEqual([
      'NickName',
      'CompanyMainPhone',
      'IMAddress',
      'IMAddress2',
      'ManagerName',
    ]);
  });

  it('reads vCard 4: tel: URIs, a year-less birthday (year 1604), ANNIVERSARY, RELATED as text, a data-URI photo', () => {
    const f = fields(toDevice(V4, { timezone: undefined }));
    expect(f).toMatchObject({
      FileAs: 'Tomás Ortega',
      Email1Address: 'tomas@ortega.example',
      Email2Address: 'tomas.ortega@correo.example',
      MobilePhoneNumber: '+34-600-123-456',
      HomePhoneNumber: '+34 91 123 45 67',
      Birthday: '1604-03-15T00:00:00.000Z',
      Anniversary: '2010-09-25T00:00:00.000Z',
      Spouse: 'Lucía Ferrer',
      IMAddress: 'xmpp:tomas@jabber.example',
      Picture: 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==',
    });
  });

  it('leaves out a picture over the limit (48 KB by default)', () => {
    const big = 'A'.repeat(Math.ceil(((MAX_PICTURE_BYTES + 10) * 4) / 3 / 4) * 4);
    const vcard = IOS.replace(/PHOTO;[^\r]*(\r\n [^\r]*)*/, `PHOTO;ENCODING=b;TYPE=JPEG:${big}`);
    expect(fields(toDevice(vcard)).Picture).toBeUndefined();
    expect(fields(toDevice(vcard, { maxPictureBytes: 5 * 1024 * 1024 })).Picture).toBe(big);
  });

  it('truncates the note to the body preference', () => {
    const body = child(
      appData(toDevice(IOS, { bodyPreferences: [{ type: 1, truncationSize: 10 }] })),
      'Body',
      'AirSyncBase',
    )!;
    expect(textOf(child(body, 'Data', 'AirSyncBase'))).toBe('Met at ASH');
    expect(textOf(child(body, 'Truncated', 'AirSyncBase'))).toBe('1');
  });

  it('returns undefined for text that is not a vCard', () => {
    expect(
      contactApplicationData(loadDavFixture('apple-allday.ics'), { version: '14.1', bodyPreferences: [] }),
    ).toBeUndefined();
    expect(contactApplicationData('garbage', { version: '14.1', bodyPreferences: [] })).toBeUndefined();
  });

  it('uses only tags of the Contacts and Contacts2 code pages', () => {
    for (const e of [...toDevice(IOS), ...toDevice(V4)]) expect(tagCode(e.ns, e.tag), `${e.ns}:${e.tag}`).toBeDefined();
  });
});

describe('device → server → device', () => {
  /** What an Android client sends for a new contact. */
  const added = (): WbxmlElement[] => [
    el('Contacts', 'FileAs', 'Jansen, Pieter'),
    el('Contacts', 'FirstName', 'Pieter'),
    el('Contacts', 'LastName', 'Jansen'),
    el('Contacts', 'MiddleName', 'van'),
    el('Contacts', 'Suffix', 'Jr.'),
    el('Contacts', 'Title', 'Ir.'),
    el('Contacts', 'CompanyName', 'Polder Water BV'),
    el('Contacts', 'Department', 'Sluices'),
    el('Contacts', 'JobTitle', 'Engineer'),
    el('Contacts', 'OfficeLocation', 'B2.14'),
    el('Contacts', 'Email1Address', '"Pieter Jansen" <pieter@polder.example>'),
    el('Contacts', 'Email2Address', 'pj@home.example'),
    el('Contacts', 'MobilePhoneNumber', '+31 6 1234 5678'),
    el('Contacts', 'BusinessPhoneNumber', '+31 20 555 0100'),
    el('Contacts', 'Business2PhoneNumber', '+31 20 555 0101'),
    el('Contacts', 'HomePhoneNumber', '+31 20 555 0200'),
    el('Contacts', 'Home2PhoneNumber', '+31 20 555 0201'),
    el('Contacts', 'CarPhoneNumber', '+31 6 9999 0000'),
    el('Contacts', 'RadioPhoneNumber', '+31 6 8888 0000'),
    el('Contacts', 'PagerNumber', '+31 6 7777 0000'),
    el('Contacts', 'HomeFaxNumber', '+31 20 555 0299'),
    el('Contacts', 'BusinessFaxNumber', '+31 20 555 0199'),
    el('Contacts', 'AssistantPhoneNumber', '+31 20 555 0142'),
    el('Contacts2', 'CompanyMainPhone', '+31 20 555 0000'),
    el('Contacts2', 'MMS', '+31 6 1234 5679'),
    el('Contacts', 'BusinessAddressStreet', 'Dijkweg 1'),
    el('Contacts', 'BusinessAddressCity', 'Delft'),
    el('Contacts', 'BusinessAddressPostalCode', '2611 AA'),
    el('Contacts', 'BusinessAddressCountry', 'Netherlands'),
    el('Contacts', 'HomeAddressStreet', 'Grachtstraat 9'),
    el('Contacts', 'HomeAddressCity', 'Leiden'),
    el('Contacts', 'HomeAddressState', 'Zuid-Holland'),
    el('Contacts', 'OtherAddressStreet', 'Strandweg 3'),
    el('Contacts', 'OtherAddressCity', 'Zandvoort'),
    el('Contacts', 'WebPage', 'https://polder.example/~pieter'),
    el('Contacts', 'Birthday', '1979-02-28T23:00:00.000Z'),
    el('Contacts', 'Anniversary', '2005-06-17T22:00:00.000Z'),
    el('Contacts', 'Spouse', 'Anke'),
    el('Contacts', 'Children', [el('Contacts', 'Child', 'Sem'), el('Contacts', 'Child', 'Lotte')]),
    el('Contacts', 'AssistantName', 'Fleur'),
    el('Contacts2', 'ManagerName', 'Joost'),
    el('Contacts2', 'NickName', 'Piet'),
    el('Contacts', 'YomiFirstName', 'Piter'),
    el('Contacts', 'YomiLastName', 'Jansn'),
    el('Contacts', 'YomiCompanyName', 'Polder'),
    el('Contacts2', 'IMAddress', 'pieter@jabber.example'),
    el('Contacts2', 'IMAddress2', 'sip:pieter@polder.example'),
    el('Contacts2', 'CustomerId', 'C-1009'),
    el('Contacts2', 'GovernmentId', 'NL-123'),
    el('Contacts2', 'AccountName', 'pjansen'),
    el('Contacts', 'Categories', [el('Contacts', 'Category', 'Suppliers')]),
    el('Contacts', 'Picture', '/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAP//'),
    el('AirSyncBase', 'Body', [el('AirSyncBase', 'Type', 1), el('AirSyncBase', 'Data', 'Knows the sluice schedules.')]),
  ];

  it('gives the same fields back (the e-mail as a bare address), through a vCard 3.0 others can read', () => {
    const vcard = contactFromApplicationData(appData(added()), { timezone: 'Europe/Amsterdam' });
    expect(vcard).toMatch(/^BEGIN:VCARD\r\nVERSION:3\.0\r\n/);
    expect(vcard).toContain('N:Jansen;Pieter;van;Ir.;Jr.\r\n');
    expect(vcard).toContain('BDAY;VALUE=DATE:19790301\r\n');
    expect(vcard).toContain('TEL;TYPE=CELL,VOICE:+31 6 1234 5678\r\n');
    expect(vcard).toContain('IMPP:im:pieter@jabber.example\r\n');
    expect(vcard).toMatch(/ITEM\d+\.X-ABRELATEDNAMES:Anke\r\nITEM\d+\.X-ABLABEL:_\$!<Spouse>!\$_/);
    const back = fields(toDevice(vcard, { timezone: 'Europe/Amsterdam' }));
    const sent = fields(added());
    expect(back).toEqual({ ...sent, Email1Address: 'pieter@polder.example' });
  });

  it('keeps the iOS card as it is when the device sends it back unchanged', () => {
    const app = toDevice(IOS);
    const vcard = contactFromApplicationData(appData(app), { existing: IOS, timezone: 'Europe/Stockholm' });
    // The same properties, parameters and values (ical.js spells some differently: TYPE lists, REV and BDAY forms).
    const properties = (text: string): string[] =>
      card(text)
        .getAllProperties()
        .filter((p) => p.name !== 'rev')
        .map((p) => {
          const params = { ...(p.jCal[1] as Record<string, unknown>) };
          if (params.type !== undefined)
            params.type = [params.type]
              .flat()
              .map((t) => String(t).toUpperCase())
              .sort();
          return JSON.stringify([p.name, params, p.getValues().map(String)]);
        })
        .sort();
    expect(properties(vcard)).toEqual(properties(IOS));
  });
});

describe('changes (merges into the server copy)', () => {
  it('edits values in place and keeps what ActiveSync does not carry', () => {
    const app = toDevice(IOS).map((e) =>
      e.tag === 'MobilePhoneNumber'
        ? el('Contacts', 'MobilePhoneNumber', '+46 70 000 00 00')
        : e.tag === 'JobTitle'
          ? el('Contacts', 'JobTitle', 'CSO')
          : e,
    );
    const vcard = contactFromApplicationData(appData(app), { existing: IOS });
    expect(vcard).toContain('TEL;TYPE=CELL,VOICE,pref:+46 70 000 00 00');
    expect(vcard).toContain('TITLE:CSO');
    // The second mobile number, the fourth e-mail, X-SOCIALPROFILE and the iOS labels are no elements: kept.
    for (const kept of [
      '+46 73 987 65 43',
      'old.maja@hotmail.example',
      'X-SOCIALPROFILE',
      'ITEM5.X-ABLABEL:summer house',
      'UID:3A4C1E2B',
    ])
      expect(vcard).toContain(kept);
  });

  it('keeps properties whose element is absent, unless the Supported list names it', () => {
    const only = [el('Contacts', 'FirstName', 'Maja'), el('Contacts', 'LastName', 'Lindqvist')];
    const kept = card(contactFromApplicationData(appData(only), { existing: IOS }));
    expect(kept.getAllProperties('tel')).toHaveLength(8);
    expect(kept.getFirstPropertyValue('note')).toContain('ASHG');
    const supported = [
      'MobilePhoneNumber',
      'Email2Address',
      'Body',
      'Spouse',
      'Children',
      'HomeAddressStreet',
      'HomeAddressCity',
      'HomeAddressPostalCode',
      'HomeAddressCountry',
      'HomeAddressState',
      'Birthday',
      'MiddleName',
    ];
    const deleted = contactFromApplicationData(appData(only), { existing: IOS, supported });
    expect(deleted).not.toContain('+46 70 123 45 67');
    expect(deleted).toContain('+46 73 987 65 43'); // the second mobile was never an element
    expect(deleted).not.toContain('maja.l@posteo.example');
    expect(deleted).not.toContain('NOTE:');
    expect(deleted).not.toContain('Anders');
    expect(deleted).not.toContain('Astrid');
    expect(deleted).not.toContain('Sveavägen');
    expect(deleted).not.toContain('BDAY');
    expect(deleted).toContain('N:Lindqvist;Maja;;Dr.;PhD');
    expect(deleted).not.toMatch(/X-ABLABEL:_\$!<(Spouse|Child)>!\$_/); // labels of removed properties go too
    expect(deleted).toContain('X-ABLABEL:_$!<Manager>!$_');
  });

  it('does not delete a photo the device never got (too large), even when Picture is supported', () => {
    const big = 'A'.repeat(80_000);
    const existing = IOS.replace(/PHOTO;[^\r]*(\r\n [^\r]*)*/, `PHOTO;ENCODING=b;TYPE=JPEG:${big}`);
    const app = toDevice(existing);
    expect(fields(app).Picture).toBeUndefined();
    const vcard = contactFromApplicationData(appData(app), { existing, supported: ['Picture'] });
    expect(vcard.replace(/\r\n /g, '')).toContain(big);
    const removed = contactFromApplicationData(appData(toDevice(IOS).filter((e) => e.tag !== 'Picture')), {
      existing: IOS,
      supported: ['Picture'],
    });
    expect(removed).not.toContain('PHOTO');
  });

  it('edits a vCard 4 in vCard 4 forms (RELATED, ANNIVERSARY, data: URI) without rewriting what it did not change', () => {
    const app = toDevice(V4, { timezone: undefined })
      .filter((e) => e.tag !== 'Spouse')
      .concat([el('Contacts', 'Spouse', 'Lucía Ortega'), el('Contacts', 'AssistantName', 'Marta')]);
    const vcard = contactFromApplicationData(appData(app), { existing: V4 });
    expect(vcard).toMatch(/^BEGIN:VCARD\r\nVERSION:4\.0\r\n/);
    expect(vcard).toContain('RELATED;TYPE=spouse;VALUE=TEXT:Lucía Ortega');
    expect(vcard).toContain('RELATED;TYPE=assistant;VALUE=TEXT:Marta');
    expect(vcard).toContain('BDAY:--0315');
    expect(vcard).toContain('ANNIVERSARY:20100925');
    expect(vcard).toContain('TEL;TYPE=cell,voice;VALUE=URI:tel:+34-600-123-456');
    expect(vcard).toContain('PHOTO:data:image/png;base64,iVBORw0KGgo');
    expect(vcard).toContain('RELATED;TYPE=contact:urn:uuid:0b7e4a8c-2d1f-4e3a-9c5b-7d6e8f9a0b1c');
    const newPhoto = contactFromApplicationData(appData([el('Contacts', 'Picture', '/9j/4AAQSkZJRg==')]), {
      existing: V4,
    });
    expect(newPhoto).toContain('PHOTO:data:image/jpeg;base64,/9j/4AAQSkZJRg==');
  });

  it('takes the date a device means from a Birthday at local midnight in UTC, west or east of Greenwich', () => {
    for (const [sent, expected] of [
      ['1990-05-17T07:00:00.000Z', '19900517'], // Los Angeles midnight
      ['1990-05-16T22:00:00.000Z', '19900517'], // Berlin midnight
      ['1990-05-17T00:00:00.000Z', '19900517'],
      ['1990-05-16T14:00:00.000Z', '19900517'], // Auckland midnight (UTC+10… +12)
    ] as const) {
      expect(contactFromApplicationData(appData([el('Contacts', 'Birthday', sent)]))).toContain(
        `BDAY;VALUE=DATE:${expected}`,
      );
    }
  });

  it('writes FN from the names when a device sends no FileAs, and always an N', () => {
    const vcard = contactFromApplicationData(
      appData([
        el('Contacts', 'FirstName', 'Ana'),
        el('Contacts', 'LastName', 'Silva'),
        el('Contacts', 'Suffix', 'MD'),
      ]),
    );
    expect(vcard).toContain('FN:Ana Silva\\, MD');
    const company = contactFromApplicationData(appData([el('Contacts', 'CompanyName', 'ACME')]));
    expect(company).toContain('FN:ACME');
    expect(company).toContain('N:;;;;');
  });
});

describe('WBXML', () => {
  it('a contact ApplicationData inside a Sync Add decodes with libwbxml to the same tree', () => {
    const app = toDevice(IOS, { bodyPreferences: [{ type: 1, truncationSize: 1024 }] });
    const sync = el('AirSync', 'Sync', [
      el('AirSync', 'Collections', [
        el('AirSync', 'Collection', [
          el('AirSync', 'SyncKey', '{9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d}7'),
          el('AirSync', 'CollectionId', '9'),
          el('AirSync', 'Status', '1'),
          el('AirSync', 'Commands', [
            el('AirSync', 'Add', [el('AirSync', 'ServerId', '9:3q7w1e5r9t2y'), el('AirSync', 'ApplicationData', app)]),
          ]),
        ]),
      ]),
    ]);
    expect(parseLibwbxmlXml(libwbxmlDecode(encodeWbxml(sync)))).toEqual(comparable(sync));
  });
});
