/**
 * What the replay tool reads: a capture export (admin/capture.ts CaptureSession) or a corpus session written by hand
 * from a published capture or a specification example. A corpus session is a capture export that may say which
 * client it shows and where its shapes come from, may give the folders its requests name when the FolderSync answer
 * that listed them is absent, and whose requests may lack their answer and may say which status the protocol
 * documents for them.
 */
import { z } from 'zod';
import type { CapturedBody } from '../state/types.ts';

/** The answer a request must get, when it is not success. */
export interface ReplayExpect {
  /** The HTTP status (449 for a 12.x device that must provision, 401 for a request without credentials…). */
  httpStatus?: number;
  /** The Status of the command or a collection (MS-ASCMD §2.2.3.177.x), e.g. 3 for Sync with an unknown SyncKey. */
  status?: number;
  /**
   * Headers the answer must carry, each beginning with this value (case-insensitive), e.g. `WWW-Authenticate: Basic`
   * for the challenge a request without credentials gets (RFC 9110 §11.6.1).
   */
  headers?: Record<string, string>;
}

/** Where a corpus session's shapes come from. */
export interface ReplaySource {
  title: string;
  url?: string;
  /** A section or example number, e.g. "MS-ASCMD §4.5.1". */
  section?: string;
  note?: string;
}

/** A folder a request names, when the session holds no FolderSync answer that lists it. */
export interface FolderHint {
  /** The FolderSync Type (MS-ASCMD §2.2.3.186.3): 2 Inbox, 8 Calendar, 9 Contacts, 7 Tasks, 12 user mail… */
  type: number;
  name: string;
}

export interface ReplayExchange {
  /** ISO time of the original request; only for people. */
  time?: string;
  ms?: number;
  /** POST, or OPTIONS. */
  method: string;
  /** The ActiveSync command (Sync, FolderSync…), `Autodiscover`, or '' for OPTIONS. */
  command: string;
  /** The query as the device sent it, plain or base64-packed, without the `?`. */
  query: string;
  /** The request path; by default /Microsoft-Server-ActiveSync (/autodiscover/autodiscover.xml for Autodiscover). */
  path?: string;
  request: { headers: Record<string, string>; body?: CapturedBody };
  /** The captured answer; absent in corpus sessions from published requests. */
  response?: { status: number; headers: Record<string, string>; body?: CapturedBody };
  commandStatus?: number;
  error?: string;
  /** The documented answer when it is not success (only read when `response` is absent). */
  expect?: ReplayExpect;
  /**
   * Sent without credentials (no Authorization header), as the Remote Connectivity Analyzer's first OPTIONS probe is;
   * every other request carries the replay's.
   */
  anonymous?: boolean;
}

export interface ReplaySession {
  format: 'activesync-edge-capture';
  version: 1;
  tenant?: string;
  user: string;
  deviceId: string;
  exportedAt?: string;
  /** The client whose traffic this is (corpus): "iOS Mail 17", "Gmail for Android"… */
  client?: string;
  /** The MS-ASProtocolVersion of requests whose headers do not say it. */
  protocolVersion?: string;
  sources?: ReplaySource[];
  /** Captured folder id → its type and name, for requests naming folders no captured FolderSync answer lists. */
  folders?: Record<string, FolderHint>;
  requests: ReplayExchange[];
}

const bodySchema: z.ZodType<CapturedBody> = z.lazy(() =>
  z.object({
    contentType: z.string(),
    bytes: z.number().int().nonnegative(),
    xml: z.string().optional(),
    text: z.string().optional(),
    base64: z.string().optional(),
    parts: z.array(bodySchema).optional(),
    cut: z.boolean().optional(),
  }),
) as z.ZodType<CapturedBody>;

const headersSchema = z.record(z.string(), z.string());

const exchangeSchema = z.object({
  time: z.string().optional(),
  ms: z.number().optional(),
  method: z.string().min(1),
  command: z.string(),
  query: z.string(),
  path: z.string().startsWith('/').optional(),
  request: z.object({ headers: headersSchema, body: bodySchema.optional() }),
  response: z.object({ status: z.number().int(), headers: headersSchema, body: bodySchema.optional() }).optional(),
  commandStatus: z.number().int().optional(),
  error: z.string().optional(),
  expect: z
    .object({
      httpStatus: z.number().int().optional(),
      status: z.number().int().optional(),
      headers: headersSchema.optional(),
    })
    .optional(),
  anonymous: z.boolean().optional(),
});

const sessionSchema = z.object({
  format: z.literal('activesync-edge-capture'),
  version: z.literal(1),
  tenant: z.string().optional(),
  user: z.string(),
  deviceId: z.string(),
  exportedAt: z.string().optional(),
  client: z.string().optional(),
  protocolVersion: z.string().optional(),
  sources: z
    .array(
      z.object({
        title: z.string().min(1),
        url: z.string().optional(),
        section: z.string().optional(),
        note: z.string().optional(),
      }),
    )
    .optional(),
  folders: z.record(z.string(), z.object({ type: z.number().int(), name: z.string() })).optional(),
  requests: z.array(exchangeSchema),
});

export class ReplaySessionError extends Error {
  override readonly name = 'ReplaySessionError';
}

/** Reads a session file's JSON; throws ReplaySessionError naming the first field that is wrong. */
export function parseReplaySession(json: unknown): ReplaySession {
  const parsed = sessionSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ReplaySessionError(`not a session file: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  return parsed.data as ReplaySession;
}
