/** Sync status codes (MS-ASCMD §2.2.3.177.17), and the per-item answer that carries one. */
import { el, type WbxmlElement } from '../wbxml/tree.ts';

export const SyncStatus = {
  Success: 1,
  InvalidSyncKey: 3,
  ProtocolError: 4,
  ServerError: 5,
  ConversionError: 6,
  Conflict: 7,
  ObjectNotFound: 8,
  HierarchyChanged: 12,
  IncompleteRequest: 13,
  InvalidWaitOrHeartbeat: 14,
  TooManyCollections: 15,
  Retry: 16,
} as const;

/** `Responses/Change|Delete|Fetch` for one item: its ServerId and Status. */
export function itemStatus(tag: string, serverId: string | undefined, status: number): WbxmlElement {
  const kind = tag === 'Delete' || tag === 'Fetch' ? tag : 'Change';
  return el('AirSync', kind, [el('AirSync', 'ServerId', serverId ?? ''), el('AirSync', 'Status', String(status))]);
}
