// Helpers for the ctxpack GitHub Action (action.yml): what
// @actions/core does, written out so that the action needs no packages.
// Inputs come from INPUT_<NAME> variables, outputs and state go to the
// $GITHUB_OUTPUT and $GITHUB_STATE files, the post step reads the state
// back from STATE_<name> variables, and messages are workflow commands.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');

function getInput(name, required) {
  const v = (process.env['INPUT_' + name.replace(/ /g, '_').toUpperCase()] || '').trim();
  if (required && !v) throw new Error(`input required and not supplied: ${name}`);
  return v;
}

// One value per line, blank lines dropped.
function getMultilineInput(name, required) {
  const v = getInput(name, required).split('\n').map((l) => l.trim()).filter((l) => l);
  if (required && !v.length) throw new Error(`input required and not supplied: ${name}`);
  return v;
}

// YAML 1.2's core booleans, as the runner's toolkit accepts them.
function getBooleanInput(name) {
  const v = getInput(name);
  if (['true', 'True', 'TRUE'].includes(v)) return true;
  if (['false', 'False', 'FALSE', ''].includes(v)) return false;
  throw new Error(`input ${name} must be true or false, not '${v}'`);
}

// Append name/value to a file command file ($GITHUB_OUTPUT, ...), in the
// heredoc form so that any value is safe.
function fileCommand(envName, name, value) {
  const file = process.env[envName];
  if (!file) throw new Error(`${envName} is not set: run this action on a GitHub Actions runner`);
  const s = String(value);
  let delim;
  do delim = 'ghadelimiter_' + crypto.randomUUID(); while (s.includes(delim) || name.includes(delim));
  fs.appendFileSync(file, `${name}<<${delim}\n${s}\n${delim}\n`);
}

const setOutput = (name, value) => fileCommand('GITHUB_OUTPUT', name, value);
const saveState = (name, value) => fileCommand('GITHUB_STATE', name, value);
const getState = (name) => process.env['STATE_' + name] || '';

// Make dir the first PATH entry for this step and the job's later steps.
function addPath(dir) {
  const file = process.env.GITHUB_PATH;
  if (!file) throw new Error('GITHUB_PATH is not set: run this action on a GitHub Actions runner');
  fs.appendFileSync(file, dir + '\n');
  process.env.PATH = dir + path.delimiter + (process.env.PATH || '');
}

const escapeData = (s) => String(s).replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
const info = (msg) => process.stdout.write(msg + '\n');
const warning = (msg) => process.stdout.write(`::warning::${escapeData(msg)}\n`);
const error = (msg) => process.stdout.write(`::error::${escapeData(msg)}\n`);
const group = (title) => process.stdout.write(`::group::${escapeData(title)}\n`);
const endGroup = () => process.stdout.write('::endgroup::\n');

function setFailed(msg) {
  error(msg);
  process.exitCode = 1;
}

// Run a program, its standard error to the job log; returns spawnSync's
// result (stdout as text when captured).
function run(file, args, opts) {
  return spawnSync(file, args, Object.assign({ encoding: 'utf8', stdio: 'inherit' }, opts));
}

// The ctxpack command line shown in the log.
const shown = (args) => ['ctxpack'].concat(args.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a)))).join(' ');

module.exports = {
  getInput, getMultilineInput, getBooleanInput, setOutput, saveState, getState, addPath,
  info, warning, error, group, endGroup, setFailed, run, shown,
};
