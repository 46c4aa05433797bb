/**
 * The built-in table of common time zones' current rules; for other zones src/items/timezone.ts falls back to the
 * runtime's tz database through Intl. Each entry gives the IANA names (the first is the one this server writes), the
 * Windows zone name, which is also the StandardName of a TIME_ZONE_INFORMATION blob (MS-ASDTYPE §2.7.6) and what
 * Windows clients show, the bias, and the daylight saving rules in the blob's day-in-month form.
 */

export interface TransitionRule {
  month: number;
  /** 1–4, 5 = last. */
  week: number;
  dayOfWeek: number;
  hour: number;
}

export interface KnownZone {
  /** IANA names; the first is the one this server writes. */
  tzids: readonly string[];
  /** The Windows zone id, which is also its StandardName ("W. Europe Standard Time"); '' for UTC. */
  windows: string;
  /** Minutes, UTC = local + bias. */
  bias: number;
  /** When DST starts (local standard time) and ends (local daylight time); DST is always one hour. */
  dst?: { start: TransitionRule; end: TransitionRule };
}

const SUNDAY = 0;
/** EU: last Sunday of March 01:00 UTC to last Sunday of October 01:00 UTC, written in local time. */
const eu = (startHour: number) => ({
  start: { month: 3, week: 5, dayOfWeek: SUNDAY, hour: startHour },
  end: { month: 10, week: 5, dayOfWeek: SUNDAY, hour: startHour + 1 },
});
/** US and Canada since 2007: second Sunday of March to first Sunday of November, 02:00 local. */
const NORTH_AMERICA = {
  start: { month: 3, week: 2, dayOfWeek: SUNDAY, hour: 2 },
  end: { month: 11, week: 1, dayOfWeek: SUNDAY, hour: 2 },
};
/** South-east Australia since 2008: first Sunday of October 02:00 to first Sunday of April 03:00. */
const AUSTRALIA = {
  start: { month: 10, week: 1, dayOfWeek: SUNDAY, hour: 2 },
  end: { month: 4, week: 1, dayOfWeek: SUNDAY, hour: 3 },
};
/** New Zealand since 2007: last Sunday of September 02:00 to first Sunday of April 03:00. */
const NEW_ZEALAND = {
  start: { month: 9, week: 5, dayOfWeek: SUNDAY, hour: 2 },
  end: { month: 4, week: 1, dayOfWeek: SUNDAY, hour: 3 },
};

/**
 * Common zones with their current rules (2024). Zones whose rules are not day-in-month (Israel, Egypt, Morocco,
 * Chile's Saturday-24:00 transitions…) are left to the Intl fallback. Within one bias and rule set the first entry
 * wins when a nameless blob is matched.
 */
export const KNOWN_ZONES: readonly KnownZone[] = [
  {
    tzids: ['UTC', 'Etc/UTC', 'Etc/GMT', 'GMT', 'Etc/Universal', 'Etc/Zulu', 'Universal', 'Zulu', 'Etc/Greenwich'],
    windows: '',
    bias: 0,
  },
  {
    tzids: ['Europe/London', 'Europe/Dublin', 'Europe/Lisbon', 'Atlantic/Canary', 'Atlantic/Faroe', 'Atlantic/Madeira'],
    windows: 'GMT Standard Time',
    bias: 0,
    dst: eu(1),
  },
  {
    tzids: ['Atlantic/Reykjavik', 'Africa/Abidjan', 'Africa/Accra', 'Africa/Dakar'],
    windows: 'Greenwich Standard Time',
    bias: 0,
  },
  {
    tzids: [
      'Europe/Berlin',
      'Europe/Amsterdam',
      'Europe/Vienna',
      'Europe/Zurich',
      'Europe/Rome',
      'Europe/Stockholm',
      'Europe/Oslo',
      'Europe/Luxembourg',
      'Europe/Monaco',
      'Europe/Malta',
    ],
    windows: 'W. Europe Standard Time',
    bias: -60,
    dst: eu(2),
  },
  {
    tzids: ['Europe/Paris', 'Europe/Brussels', 'Europe/Madrid', 'Europe/Copenhagen'],
    windows: 'Romance Standard Time',
    bias: -60,
    dst: eu(2),
  },
  {
    tzids: ['Europe/Prague', 'Europe/Budapest', 'Europe/Belgrade', 'Europe/Bratislava', 'Europe/Ljubljana'],
    windows: 'Central Europe Standard Time',
    bias: -60,
    dst: eu(2),
  },
  {
    tzids: ['Europe/Warsaw', 'Europe/Zagreb', 'Europe/Sarajevo', 'Europe/Skopje'],
    windows: 'Central European Standard Time',
    bias: -60,
    dst: eu(2),
  },
  { tzids: ['Africa/Lagos', 'Africa/Algiers', 'Africa/Tunis'], windows: 'W. Central Africa Standard Time', bias: -60 },
  {
    tzids: ['Europe/Athens', 'Europe/Bucharest', 'Asia/Nicosia'],
    windows: 'GTB Standard Time',
    bias: -120,
    dst: eu(3),
  },
  {
    tzids: [
      'Europe/Helsinki',
      'Europe/Kyiv',
      'Europe/Kiev',
      'Europe/Riga',
      'Europe/Sofia',
      'Europe/Tallinn',
      'Europe/Vilnius',
    ],
    windows: 'FLE Standard Time',
    bias: -120,
    dst: eu(3),
  },
  {
    tzids: ['Africa/Johannesburg', 'Africa/Maputo', 'Africa/Harare'],
    windows: 'South Africa Standard Time',
    bias: -120,
  },
  { tzids: ['Europe/Istanbul', 'Asia/Istanbul'], windows: 'Turkey Standard Time', bias: -180 },
  { tzids: ['Europe/Moscow', 'Europe/Minsk'], windows: 'Russian Standard Time', bias: -180 },
  {
    tzids: ['Asia/Riyadh', 'Asia/Kuwait', 'Asia/Qatar', 'Asia/Bahrain', 'Asia/Baghdad'],
    windows: 'Arab Standard Time',
    bias: -180,
  },
  { tzids: ['Africa/Nairobi', 'Africa/Addis_Ababa'], windows: 'E. Africa Standard Time', bias: -180 },
  { tzids: ['Asia/Tehran'], windows: 'Iran Standard Time', bias: -210 },
  { tzids: ['Asia/Dubai', 'Asia/Muscat'], windows: 'Arabian Standard Time', bias: -240 },
  { tzids: ['Asia/Kabul'], windows: 'Afghanistan Standard Time', bias: -270 },
  { tzids: ['Asia/Karachi'], windows: 'Pakistan Standard Time', bias: -300 },
  { tzids: ['Asia/Tashkent', 'Asia/Yekaterinburg'], windows: 'West Asia Standard Time', bias: -300 },
  { tzids: ['Asia/Kolkata', 'Asia/Calcutta'], windows: 'India Standard Time', bias: -330 },
  { tzids: ['Asia/Kathmandu', 'Asia/Katmandu'], windows: 'Nepal Standard Time', bias: -345 },
  { tzids: ['Asia/Dhaka'], windows: 'Bangladesh Standard Time', bias: -360 },
  { tzids: ['Asia/Yangon', 'Asia/Rangoon'], windows: 'Myanmar Standard Time', bias: -390 },
  {
    tzids: ['Asia/Bangkok', 'Asia/Jakarta', 'Asia/Ho_Chi_Minh', 'Asia/Saigon'],
    windows: 'SE Asia Standard Time',
    bias: -420,
  },
  {
    tzids: ['Asia/Shanghai', 'Asia/Hong_Kong', 'Asia/Chongqing', 'Asia/Macau', 'PRC'],
    windows: 'China Standard Time',
    bias: -480,
  },
  { tzids: ['Asia/Singapore', 'Asia/Kuala_Lumpur', 'Asia/Manila'], windows: 'Singapore Standard Time', bias: -480 },
  { tzids: ['Asia/Taipei'], windows: 'Taipei Standard Time', bias: -480 },
  { tzids: ['Australia/Perth'], windows: 'W. Australia Standard Time', bias: -480 },
  { tzids: ['Asia/Tokyo', 'Japan'], windows: 'Tokyo Standard Time', bias: -540 },
  { tzids: ['Asia/Seoul'], windows: 'Korea Standard Time', bias: -540 },
  {
    tzids: ['Australia/Adelaide', 'Australia/Broken_Hill'],
    windows: 'Cen. Australia Standard Time',
    bias: -570,
    dst: AUSTRALIA,
  },
  { tzids: ['Australia/Darwin'], windows: 'AUS Central Standard Time', bias: -570 },
  {
    tzids: [
      'Australia/Sydney',
      'Australia/Melbourne',
      'Australia/Canberra',
      'Australia/ACT',
      'Australia/NSW',
      'Australia/Victoria',
    ],
    windows: 'AUS Eastern Standard Time',
    bias: -600,
    dst: AUSTRALIA,
  },
  { tzids: ['Australia/Hobart', 'Australia/Tasmania'], windows: 'Tasmania Standard Time', bias: -600, dst: AUSTRALIA },
  { tzids: ['Australia/Brisbane', 'Australia/Queensland'], windows: 'E. Australia Standard Time', bias: -600 },
  { tzids: ['Pacific/Port_Moresby', 'Pacific/Guam'], windows: 'West Pacific Standard Time', bias: -600 },
  {
    tzids: ['Pacific/Auckland', 'NZ', 'Antarctica/McMurdo'],
    windows: 'New Zealand Standard Time',
    bias: -720,
    dst: NEW_ZEALAND,
  },
  { tzids: ['Pacific/Fiji'], windows: 'Fiji Standard Time', bias: -720 },
  { tzids: ['America/Sao_Paulo'], windows: 'E. South America Standard Time', bias: 180 },
  { tzids: ['America/Argentina/Buenos_Aires', 'America/Buenos_Aires'], windows: 'Argentina Standard Time', bias: 180 },
  {
    tzids: ['America/St_Johns', 'Canada/Newfoundland'],
    windows: 'Newfoundland Standard Time',
    bias: 210,
    dst: NORTH_AMERICA,
  },
  {
    tzids: ['America/Halifax', 'Atlantic/Bermuda', 'Canada/Atlantic'],
    windows: 'Atlantic Standard Time',
    bias: 240,
    dst: NORTH_AMERICA,
  },
  {
    tzids: ['America/La_Paz', 'America/Puerto_Rico', 'America/Santo_Domingo', 'America/Manaus'],
    windows: 'SA Western Standard Time',
    bias: 240,
  },
  { tzids: ['America/Caracas'], windows: 'Venezuela Standard Time', bias: 240 },
  {
    tzids: [
      'America/New_York',
      'America/Toronto',
      'America/Detroit',
      'America/Nassau',
      'America/Montreal',
      'US/Eastern',
      'EST5EDT',
      'Canada/Eastern',
    ],
    windows: 'Eastern Standard Time',
    bias: 300,
    dst: NORTH_AMERICA,
  },
  {
    tzids: ['America/Bogota', 'America/Lima', 'America/Panama', 'America/Jamaica'],
    windows: 'SA Pacific Standard Time',
    bias: 300,
  },
  { tzids: ['America/Cancun'], windows: 'Eastern Standard Time (Mexico)', bias: 300 },
  {
    tzids: ['America/Chicago', 'America/Winnipeg', 'US/Central', 'CST6CDT', 'Canada/Central'],
    windows: 'Central Standard Time',
    bias: 360,
    dst: NORTH_AMERICA,
  },
  {
    tzids: ['America/Mexico_City', 'America/Monterrey', 'America/Merida'],
    windows: 'Central Standard Time (Mexico)',
    bias: 360,
  },
  {
    tzids: ['America/Guatemala', 'America/Costa_Rica', 'America/El_Salvador', 'America/Tegucigalpa'],
    windows: 'Central America Standard Time',
    bias: 360,
  },
  { tzids: ['America/Regina', 'Canada/Saskatchewan'], windows: 'Canada Central Standard Time', bias: 360 },
  {
    tzids: ['America/Denver', 'America/Edmonton', 'America/Boise', 'US/Mountain', 'MST7MDT', 'Canada/Mountain'],
    windows: 'Mountain Standard Time',
    bias: 420,
    dst: NORTH_AMERICA,
  },
  { tzids: ['America/Phoenix', 'US/Arizona'], windows: 'US Mountain Standard Time', bias: 420 },
  {
    tzids: ['America/Los_Angeles', 'America/Vancouver', 'America/Tijuana', 'US/Pacific', 'PST8PDT', 'Canada/Pacific'],
    windows: 'Pacific Standard Time',
    bias: 480,
    dst: NORTH_AMERICA,
  },
  { tzids: ['America/Anchorage', 'US/Alaska'], windows: 'Alaskan Standard Time', bias: 540, dst: NORTH_AMERICA },
  { tzids: ['Pacific/Honolulu', 'US/Hawaii'], windows: 'Hawaiian Standard Time', bias: 600 },
];

const zonesByName = new Map<string, KnownZone>();
for (const zone of KNOWN_ZONES) {
  for (const tzid of zone.tzids) zonesByName.set(tzid.toLowerCase(), zone);
  if (zone.windows) zonesByName.set(zone.windows.toLowerCase(), zone);
}

/** A trailing IANA-looking name: `/mozilla.org/20050126_1/Europe/Berlin` → `Europe/Berlin`. */
export const VENDOR_PREFIXED = /([A-Za-z_]+\/[A-Za-z_+-]+(?:\/[A-Za-z_+-]+)?)$/;

/** The table's zone for an IANA name, alias, Windows zone name or vendor-prefixed TZID; case does not matter. */
export function knownZone(tzid: string): KnownZone | undefined {
  const direct = zonesByName.get(tzid.trim().toLowerCase());
  if (direct) return direct;
  const suffix = VENDOR_PREFIXED.exec(tzid.trim())?.[1];
  return suffix ? zonesByName.get(suffix.toLowerCase()) : undefined;
}
