/**
 * `npx activesync-edge wbxml decode|encode` through the package's bin entry, as a person reading captured traffic
 * would run it, checked against libwbxml.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fromXml } from '../../src/wbxml/xml.ts';
import { comparable, libwbxmlEncode, toLibwbxmlXml } from '../wbxml/libwbxml.ts';

const ROOT = join(import.meta.dirname, '../..');
const BIN = join(ROOT, 'bin/activesync-edge.js');
const SAMPLE = join(ROOT, 'test/wbxml/corpus/26-sync-response.xml');

function cli(args: string[], input?: Uint8Array | string): { code: number | null; stdout: Buffer; stderr: string } {
  const run = spawnSync(process.execPath, [BIN, ...args], { cwd: ROOT, input });
  return { code: run.status, stdout: run.stdout, stderr: run.stderr.toString() };
}

describe('activesync-edge wbxml', () => {
  it('decodes bytes that libwbxml wrote into XML with the spec names and namespace prefixes', () => {
    const theirs = libwbxmlEncode(toLibwbxmlXml(fromXml(readFileSync(SAMPLE, 'utf8'))));
    const out = cli(['wbxml', 'decode', '-'], theirs);
    expect(out.code).toBe(0);
    const xml = out.stdout.toString();
    expect(xml).toContain('<Sync xmlns="AirSync"');
    expect(xml).toContain('<SyncKey>{7C9E6679-7425-40DE-944B-E07FC1F90AE7}1</SyncKey>');
    expect(comparable(fromXml(xml))).toEqual(comparable(fromXml(readFileSync(SAMPLE, 'utf8'))));
  });

  it('encodes an XML file into the same bytes libwbxml writes', () => {
    const out = cli(['wbxml', 'encode', SAMPLE]);
    expect(out.code).toBe(0);
    const theirs = libwbxmlEncode(toLibwbxmlXml(fromXml(readFileSync(SAMPLE, 'utf8'))));
    expect(out.stdout.toString('hex')).toBe(Buffer.from(theirs).toString('hex'));
  });

  it('reports a broken document on stderr with a non-zero exit, not a stack trace', () => {
    const out = cli(['wbxml', 'decode', '-'], new Uint8Array([0x03, 0x01, 0x6a, 0x00, 0x45, 0x4b]));
    expect(out.code).not.toBe(0);
    expect(out.stderr).toMatch(/^activesync-edge: /);
    expect(out.stderr).not.toMatch(/\n\s+at /);
  });

  it('is what `npx activesync-edge` runs', () => {
    const help = execFileSync('npx', ['--no-install', 'activesync-edge', 'wbxml', '--help'], { cwd: ROOT }).toString();
    expect(help).toContain('decode');
    expect(help).toContain('encode');
  });
});
