// The main step of the ctxpack action (action.yml): restore.
//
// Runs `ctxpack cache restore --json` for key and restore-keys and sets
// the outputs as actions/cache does: cache-hit 'true' only for an entry
// under key itself, cache-primary-key, cache-matched-key.  Like ctxpack,
// it fails open: an unreachable store is a warning and a miss, unless
// fail-on-cache-miss.  With read-only, nothing is written to the store (not
// even the restore's stats event) and the post step saves nothing.  What
// the post step needs is saved as state.
'use strict';

const core = require('./lib');
const { ensureCtxpack } = require('./install');

function main() {
  const key = core.getInput('key', true);
  const paths = core.getMultilineInput('path', true);
  const restoreKeys = core.getMultilineInput('restore-keys');
  const store = core.getInput('store');
  const lookupOnly = core.getBooleanInput('lookup-only');
  const readOnly = core.getBooleanInput('read-only');
  const failOnMiss = core.getBooleanInput('fail-on-cache-miss');
  core.getBooleanInput('save-always'); // checked here, used by the post step

  core.setOutput('cache-primary-key', key);
  const bin = ensureCtxpack();
  core.saveState('ctxpack', bin);
  core.saveState('key', key);
  core.saveState('paths', JSON.stringify(paths));
  core.saveState('store', store);
  core.saveState('read-only', String(readOnly));

  const args = ['cache', 'restore', '--json', '--key', key];
  for (const k of restoreKeys) args.push('--restore-key', k);
  if (lookupOnly) args.push('--lookup-only');
  if (readOnly) args.push('--read-only');
  if (store) args.push('--store', store);
  args.push('--', ...paths);
  core.info(core.shown(args));
  // the outputs are ours to write: ctxpack's own cache-hit/matched-key
  // lines would be outputs the action does not declare
  const env = Object.assign({}, process.env);
  delete env.GITHUB_OUTPUT;
  const r = core.run(bin, args, { env, stdio: ['ignore', 'pipe', 'inherit'] });
  if (r.error) throw new Error(`cannot run ${bin}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`ctxpack cache restore exited ${r.status}`);
  let res;
  try {
    res = JSON.parse(r.stdout.trim().split('\n').pop());
  } catch (e) {
    throw new Error(`ctxpack cache restore printed no JSON result: ${r.stdout}`);
  }
  const hit = res.result === 'hit';
  const matched = res.result === 'miss' ? '' : res.matched_key || '';
  core.setOutput('cache-hit', String(hit));
  core.setOutput('cache-matched-key', matched);
  core.saveState('hit', String(hit));
  if (res.result === 'miss') {
    const keys = [key].concat(restoreKeys).join(', ');
    if (failOnMiss) {
      core.setFailed(`no cache entry for: ${keys}` + (res.error ? ` (${res.error})` : ''));
    } else {
      core.info(`cache not found for: ${keys}`);
    }
  } else if (lookupOnly) {
    core.info(`cache entry ${matched} found (lookup-only: nothing downloaded)`);
  } else {
    core.info(`cache restored from ${matched}` + (hit ? '' : ` (a restore key; ${key} will be saved)`));
  }
}

try {
  main();
} catch (e) {
  core.setFailed(e.message);
}
