/**
 * Golden bytes for what libwbxml 0.11.8 cannot cross-check: code page 25 (Find, 16.1) and the 16.1 tokens it lacks
 * (Provision AccountOnlyRemoteWipe, MeetingResponse ProposedStartTime/ProposedEndTime). The bytes are assembled by
 * hand from the MS-ASWBXML token tables, token by token, independently of src/wbxml/codepages.ts.
 */
import { describe, expect, it } from 'vitest';
import { decodeWbxml } from '../../src/wbxml/decoder.ts';
import { encodeWbxml } from '../../src/wbxml/encoder.ts';
import { fromXml, toXml } from '../../src/wbxml/xml.ts';

/** STR_I of an ASCII string. */
const s = (text: string): string => `03 ${Buffer.from(text).toString('hex')} 00`;
const bytes = (hex: string): string => hex.replace(/\s+/g, '').toLowerCase();
const HEADER = '03 01 6A 00';
const FIND = '00 19';
const AIRSYNC = '00 00';

const cases: { name: string; xml: string; golden: string }[] = [
  {
    name: 'Find request over the mailbox (MS-ASCMD Find, 16.1)',
    xml: `<Find xmlns="Find" xmlns:airsync="AirSync">
      <SearchId>a1b2</SearchId>
      <ExecuteSearch><MailBoxSearchCriterion>
        <Query><airsync:Class>Email</airsync:Class><airsync:CollectionId>5</airsync:CollectionId><FreeText>invoice</FreeText></Query>
        <Options><Range>0-99</Range><DeepTraversal/></Options>
      </MailBoxSearchCriterion></ExecuteSearch>
    </Find>`,
    golden: `${HEADER} ${FIND} 45
      46 ${s('a1b2')} 01                       SearchId 0x06
      47 48 49                                 ExecuteSearch 0x07, MailBoxSearchCriterion 0x08, Query 0x09
      ${AIRSYNC} 50 ${s('Email')} 01           airsync:Class 0x10
      52 ${s('5')} 01                          airsync:CollectionId 0x12
      ${FIND} 4B ${s('invoice')} 01 01         FreeText 0x0B, end Query
      4C 4D ${s('0-99')} 01 0E 01              Options 0x0C, Range 0x0D, DeepTraversal 0x0E (empty)
      01 01 01`,
  },
  {
    name: 'Find response with one mail result',
    xml: `<Find xmlns="Find" xmlns:airsync="AirSync" xmlns:email="Email" xmlns:itemoperations="ItemOperations">
      <Status>1</Status>
      <Response>
        <itemoperations:Store>Mailbox</itemoperations:Store>
        <Status>1</Status>
        <Result>
          <airsync:Class>Email</airsync:Class><airsync:ServerId>5:20</airsync:ServerId><airsync:CollectionId>5</airsync:CollectionId>
          <Properties>
            <email:Subject>Invoice</email:Subject><email:DateReceived>2026-11-20T10:00:00.000Z</email:DateReceived>
            <DisplayCc>Bob</DisplayCc><DisplayBcc>Eve</DisplayBcc><Preview>Please find</Preview><HasAttachments>1</HasAttachments>
          </Properties>
        </Result>
        <Range>0-0</Range><Total>1</Total>
      </Response>
    </Find>`,
    golden: `${HEADER} ${FIND} 45
      4A ${s('1')} 01                          Status 0x0A
      51                                       Response 0x11
      00 14 47 ${s('Mailbox')} 01              itemoperations:Store 0x07
      ${FIND} 4A ${s('1')} 01
      52                                       Result 0x12
      ${AIRSYNC} 50 ${s('Email')} 01 4D ${s('5:20')} 01 52 ${s('5')} 01
      ${FIND} 53                               Properties 0x13
      00 02 54 ${s('Invoice')} 01 4F ${s('2026-11-20T10:00:00.000Z')} 01
      ${FIND} 57 ${s('Bob')} 01                DisplayCc 0x17
      58 ${s('Eve')} 01                        DisplayBcc 0x18
      54 ${s('Please find')} 01                Preview 0x14
      55 ${s('1')} 01                          HasAttachments 0x15
      01 01
      4D ${s('0-0')} 01 56 ${s('1')} 01        Range 0x0D, Total 0x16
      01 01`,
  },
  {
    name: 'Find request over the GAL, with pictures',
    xml: `<Find xmlns="Find"><SearchId>g1</SearchId><ExecuteSearch><GalSearchCriterion>
      <Query>ali</Query>
      <Options><Range>0-9</Range><Picture><MaxSize>1024</MaxSize><MaxPictures>5</MaxPictures></Picture></Options>
    </GalSearchCriterion></ExecuteSearch></Find>`,
    golden: `${HEADER} ${FIND} 45 46 ${s('g1')} 01
      47 59                                    ExecuteSearch, GalSearchCriterion 0x19
      49 ${s('ali')} 01
      4C 4D ${s('0-9')} 01
      62 61 ${s('1024')} 01 60 ${s('5')} 01 01  Picture 0x22, MaxSize 0x21, MaxPictures 0x20
      01 01 01 01`,
  },
  {
    name: 'Provision: account-only remote wipe acknowledgement (16.1)',
    xml: `<Provision xmlns="Provision"><AccountOnlyRemoteWipe><Status>1</Status></AccountOnlyRemoteWipe></Provision>`,
    golden: `${HEADER} 00 0E 45 7B 4B ${s('1')} 01 01 01`,
  },
  {
    name: 'MeetingResponse proposing a new time (16.1)',
    xml: `<MeetingResponse xmlns="MeetingResponse"><Request>
      <UserResponse>2</UserResponse><CollectionId>5</CollectionId><RequestId>5:30</RequestId>
      <ProposedStartTime>2026-12-01T10:00:00.000Z</ProposedStartTime><ProposedEndTime>2026-12-01T11:00:00.000Z</ProposedEndTime>
    </Request></MeetingResponse>`,
    golden: `${HEADER} 00 08 47 49
      4C ${s('2')} 01 46 ${s('5')} 01 48 ${s('5:30')} 01
      50 ${s('2026-12-01T10:00:00.000Z')} 01   ProposedStartTime 0x10
      51 ${s('2026-12-01T11:00:00.000Z')} 01   ProposedEndTime 0x11
      01 01`,
  },
];

/** Drops the token comments: every comment starts after a run of two spaces and ends the line. */
const stripComments = (golden: string): string =>
  golden
    .split('\n')
    .map((line) => line.replace(/ {2,}[A-Za-z].*$/, ''))
    .join(' ');

describe.each(cases)('$name', ({ xml, golden }) => {
  const expected = bytes(stripComments(golden));

  it('encodes to the golden bytes', () => {
    expect(Buffer.from(encodeWbxml(fromXml(xml))).toString('hex')).toBe(expected);
  });

  it('decodes the golden bytes to the same document', () => {
    const decoded = decodeWbxml(new Uint8Array(Buffer.from(expected, 'hex')));
    expect(toXml(decoded)).toBe(toXml(fromXml(xml)));
  });
});
