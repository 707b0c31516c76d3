// ESM entry point: the same implementation as index.js (CommonJS).
import cjs from './index.js';

export const {
  DEFAULT_MAX_SIZE,
  DEFAULT_MAX_AGE,
  MAX_EXPIRY,
  MAX_SUBJECT_LENGTH,
  HANDLE_LENGTH,
  Session,
  SessionError,
  read,
  verify,
  attach,
  withSession,
  middleware,
  headerNames,
  canonicalJSON,
  canonicalize,
  applyPatches,
  overSize,
  parseRaw,
  encodeRaw,
} = cjs;

export default cjs;
