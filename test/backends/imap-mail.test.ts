/**
 * ImapMailBackend (src/backends/imap/mail.ts) against the test Dovecot (CONDSTORE, QRESYNC, SPECIAL-USE, MOVE,
 * UIDPLUS): the MailBackend contract, each test with a new user and its own connections.
 */
import { inject } from 'vitest';
import { openImapMailBackend } from '../../src/backends/imap/mail.ts';
import { freshImapSessions } from '../../src/backends/imap/sessions.ts';
import { createUser } from '../services/seed.ts';
import { mailBackendContract } from './mail-contract.ts';

const services = inject('services');
const sessions = freshImapSessions(services.imap);

mailBackendContract('ImapMailBackend on Dovecot', {
  async account() {
    const user = createUser(services);
    return { open: () => openImapMailBackend(sessions, { user: user.email, password: user.password }) };
  },
});
