/**
 * The layering of src/ (docs/DESIGN.md §3), checked by `npm run lint:deps` in CI. Imports point down this list, never
 * up, and never in a circle; modules on one line may import each other (without cycles).
 */
const LAYERS = [
  ['runtimes', '^src/(runtimes/|cli\\.ts$)'],
  ['app', '^src/app/'],
  // The replay tool is a client of the protocol: it reads the capture format (admin) and the codec, never the server.
  ['replay', '^src/replay/'],
  ['admin', '^src/admin/'],
  ['commands', '^src/commands/'],
  ['sync', '^src/sync/'],
  ['sending', '^src/sending/'],
  ['folders', '^src/folders/'],
  ['push, devices', '^src/(push|devices)/'],
  ['protocol', '^src/protocol/'],
  ['backends, state, items', '^src/(backends|state|items)/'],
  ['settings', '^src/(tenants/|config\\.ts$|log\\.ts$)'],
  // X.509 for S/MIME (ValidateCert, recipients' certificates): below the settings, which name its trust store.
  ['smime', '^src/smime/'],
  ['wbxml, util', '^src/(wbxml|util)/'],
];

const upward = LAYERS.slice(1).map(([name, path], i) => ({
  name: `no-upward-from-${name.replace(/\W+/g, '-')}`,
  comment: `${name} may import only what is below it in .dependency-cruiser.cjs`,
  severity: 'error',
  from: { path, pathNot: '\\.test\\.ts$' },
  to: {
    path: LAYERS.slice(0, i + 1)
      .map(([, p]) => `(${p})`)
      .join('|'),
  },
}));

module.exports = {
  forbidden: [
    { name: 'no-circular', severity: 'error', from: { path: '^src/' }, to: { circular: true } },
    {
      name: 'no-unlayered',
      comment: 'every module in src/ belongs to a layer: add a new folder to LAYERS',
      severity: 'error',
      from: { path: '^src/', pathNot: `\\.test\\.ts$|${LAYERS.map(([, p]) => `(${p})`).join('|')}` },
      to: {},
    },
    ...upward,
    {
      name: 'pipeline-side-effects-as-hooks',
      comment:
        'request counting, access notices and protocol capture run as hooks the builder (app/build.ts) installs, not from the pipeline',
      severity: 'error',
      from: { path: '^src/app/(activesync|app|autodiscover|tenants)\\.ts$' },
      to: { path: '^src/(admin/(stats|capture|capture-record)\\.ts|devices/access-notice\\.ts)$' },
    },
    {
      name: 'commands-see-backend-interfaces',
      comment: 'commands get their backends from CommandContext.backends; only the builder picks the implementations',
      severity: 'error',
      from: { path: '^src/(commands|sync|sending|folders|devices|push/wait\\.ts$)' },
      to: { path: '^src/backends/(combined\\.ts$|imap/|dav/|sieve/|smtp/(?!types\\.ts$))' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '\\.test\\.ts$' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
