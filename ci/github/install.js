// Find the ctxpack the action runs, or build it (action.yml).
//
// 1. ctxpack on the PATH: the runner's own (a runner image, `make install`).
// 2. Else this checkout of ctxpack built earlier on this runner:
//    $RUNNER_TOOL_CACHE/ctxpack/VERSION-HASH/ARCH/bin/ctxpack, HASH a
//    sha256 of the sources, so that another revision of the action is never
//    served an old build.
// 3. Else build it there: scripts/install-deps --build (through sudo when
//    not root and packages are missing), then make install with a private
//    object directory into a staging prefix that is renamed into place, so
//    that jobs sharing a tool cache never see half an install.
// The directory of the binary is put on the PATH of the job's later steps.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');
const core = require('./lib');

const SRC = path.resolve(__dirname, '..', '..');

function isExecutable(p) {
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return fs.statSync(p).isFile();
  } catch (e) {
    return false;
  }
}

function onPath(name) {
  for (const dir of (process.env.PATH || '').split(path.delimiter)) {
    if (dir && isExecutable(path.join(dir, name))) return path.join(dir, name);
  }
  return null;
}

// sha256 over the files a build reads (names and contents), in order.
function sourceHash() {
  const h = crypto.createHash('sha256');
  const files = [];
  const walk = (rel) => {
    const abs = path.join(SRC, rel);
    const st = fs.statSync(abs);
    if (st.isDirectory()) {
      for (const n of fs.readdirSync(abs).sort()) walk(path.join(rel, n));
    } else if (st.isFile()) {
      files.push(rel);
    }
  };
  for (const rel of ['Makefile', 'VERSION', 'include', 'src', 'man', 'completions']) {
    if (fs.existsSync(path.join(SRC, rel))) walk(rel);
  }
  for (const rel of files) {
    h.update(rel + '\0');
    h.update(fs.readFileSync(path.join(SRC, rel)));
    h.update('\0');
  }
  return h.digest('hex').slice(0, 16);
}

function versionLine(bin) {
  const r = core.run(bin, ['--version'], { stdio: ['ignore', 'pipe', 'pipe'] });
  return r.status === 0 ? r.stdout.split('\n')[0] : null;
}

function installDeps() {
  const script = path.join(SRC, 'scripts', 'install-deps');
  // a no-op success when nothing is missing, whoever runs it
  let r = core.run(script, ['--build']);
  if (r.status === 0) return;
  if (process.getuid && process.getuid() !== 0 && onPath('sudo')) {
    core.info('installing the build packages with sudo');
    r = core.run('sudo', ['-n', script, '--build']);
    if (r.status === 0) return;
  }
  throw new Error('cannot install the packages ctxpack builds with (scripts/install-deps --build); ' +
                  'install ctxpack on the runner instead (make install)');
}

function build(dir) {
  const version = fs.readFileSync(path.join(SRC, 'VERSION'), 'utf8').trim();
  const tmp = process.env.RUNNER_TEMP || os.tmpdir();
  const objdir = fs.mkdtempSync(path.join(tmp, 'ctxpack-build-'));
  const staging = `${dir}.tmp-${process.pid}`;
  core.group(`Building ctxpack ${version} from ${SRC}`);
  try {
    installDeps();
    const jobs = String(Math.max(1, os.cpus().length));
    const r = core.run('make', ['-C', SRC, `-j${jobs}`, `O=${objdir}`, `PREFIX=${staging}`, 'install']);
    if (r.status !== 0) throw new Error(`building ctxpack failed (make exited ${r.status})`);
    fs.mkdirSync(path.dirname(dir), { recursive: true });
    try {
      fs.renameSync(staging, dir);
    } catch (e) {
      // another job on this runner installed it first: use theirs
      if (!isExecutable(path.join(dir, 'bin', 'ctxpack'))) throw e;
    }
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
    fs.rmSync(objdir, { recursive: true, force: true });
    core.endGroup();
  }
}

// The path of the ctxpack to run; a built one is put on the PATH.
function ensureCtxpack() {
  const found = onPath('ctxpack');
  if (found) {
    core.info(`using ${found} (${versionLine(found) || 'version unknown'})`);
    return found;
  }
  const version = fs.readFileSync(path.join(SRC, 'VERSION'), 'utf8').trim();
  const cache = process.env.RUNNER_TOOL_CACHE || path.join(os.homedir(), '.cache', 'ctxpack-action');
  const dir = path.join(cache, 'ctxpack', `${version}-${sourceHash()}`, os.arch());
  const bin = path.join(dir, 'bin', 'ctxpack');
  if (isExecutable(bin) && versionLine(bin)) {
    core.info(`using ctxpack built earlier on this runner: ${bin}`);
  } else {
    core.info(`ctxpack is not installed on this runner: building it into ${dir}`);
    build(dir);
    const v = versionLine(bin);
    if (!v) throw new Error(`the ctxpack just built does not run: ${bin}`);
    core.info(`built ${v}`);
  }
  core.addPath(path.dirname(bin));
  return bin;
}

module.exports = { ensureCtxpack };
