// The post step of the ctxpack action (action.yml): save.
//
// Runs after the job's steps (post-if: always()) and saves the paths
// under key with `ctxpack cache save` when the job succeeded, or whatever
// its status with save-always; not after a hit on key itself (entries are
// immutable: there is nothing new to store), and never with read-only (a
// pull request from a fork, say).  A failed save is a warning
// annotation, not a failed job: the job's own work succeeded.
'use strict';

const core = require('./lib');

function post() {
  const key = core.getState('key');
  if (!key) {
    core.info('nothing to save: the restore step did not get that far');
    return;
  }
  if (core.getState('read-only') === 'true') {
    core.info('not saving the cache: read-only');
    return;
  }
  const status = core.getInput('job-status');
  const always = core.getBooleanInput('save-always');
  if (status !== 'success' && !always) {
    if (!status) core.warning('the job status is unknown (job-status is empty); not saving, set save-always to save anyway');
    else core.info(`not saving the cache: the job's status is ${status} (save-always is false)`);
    return;
  }
  if (core.getState('hit') === 'true') {
    core.info(`cache hit on the primary key ${key}: not saving`);
    return;
  }
  const bin = core.getState('ctxpack');
  const paths = JSON.parse(core.getState('paths') || '[]');
  const store = core.getState('store');
  const args = ['cache', 'save', '--key', key];
  if (store) args.push('--store', store);
  args.push('--', ...paths);
  core.info(core.shown(args) + (status === 'success' ? '' : ` (job ${status || 'status unknown'}; save-always)`));
  const r = core.run(bin, args);
  if (r.error) core.warning(`cache not saved: cannot run ${bin}: ${r.error.message}`);
  else if (r.status !== 0) core.warning(`cache not saved: ctxpack cache save exited ${r.status} (see above)`);
}

try {
  post();
} catch (e) {
  core.warning(`cache not saved: ${e.message}`);
}
