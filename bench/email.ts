/**
 * MIME → ActiveSync Email conversion speed, without IMAP: a typical 30 KB multipart/alternative message with HTML
 * truncated at 5 KB and a 255-character preview, in each body transfer encoding.
 *
 *   npm run bench:email
 */
import { emailApplicationData, type EmailOutputOptions } from '../src/items/email.ts';
import { typicalAlternativeMessage } from '../test/fixtures/mail/generate.ts';

const OPTIONS: EmailOutputOptions = {
  version: '16.1',
  bodyPreferences: [{ type: 2, truncationSize: 5120, preview: 255 }],
  mimeSupport: 0,
  fileReference: (p) => p,
};

export async function runEmailBench(seconds = 2): Promise<void> {
  console.log('\nMIME → Email conversion (30 KB multipart/alternative, HTML truncated at 5 KB, preview 255)');
  console.log('body encoding        conversions/s');
  for (const encoding of ['quoted-printable', 'base64', '8bit'] as const) {
    const source = typicalAlternativeMessage(30 * 1024, encoding);
    const message = { uid: 1, flags: new Set(['\\Seen']), internalDate: new Date(), size: source.length, source };
    for (let i = 0; i < 50; i++) await emailApplicationData(message, OPTIONS);
    let rounds = 0;
    const started = performance.now();
    while (performance.now() - started < seconds * 1000) {
      await emailApplicationData(message, OPTIONS);
      rounds++;
    }
    console.log(`${encoding.padEnd(20)} ${((rounds / (performance.now() - started)) * 1000).toFixed(0).padStart(13)}`);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await runEmailBench();
