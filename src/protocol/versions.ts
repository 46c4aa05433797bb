/** ActiveSync protocol versions this server speaks (MS-ASHTTP §2.2.1.1.2.6), oldest first. */
export const SUPPORTED_VERSIONS = ['12.0', '12.1', '14.0', '14.1', '16.0', '16.1'] as const;

export type ProtocolVersion = (typeof SUPPORTED_VERSIONS)[number];

export function isSupportedVersion(v: string): v is ProtocolVersion {
  return (SUPPORTED_VERSIONS as readonly string[]).includes(v);
}

/** The version as a number (`14.1` → 141) for comparisons such as `atLeast(v, '14.0')`. */
export function versionNumber(v: ProtocolVersion): number {
  return Math.round(Number(v) * 10);
}

export function atLeast(v: ProtocolVersion, min: ProtocolVersion): boolean {
  return versionNumber(v) >= versionNumber(min);
}

/** The version byte of the base64 query (version × 10: 0x8C = 140) as a version string, e.g. `14.0`. */
export function versionFromByte(b: number): string {
  return (b / 10).toFixed(1);
}
