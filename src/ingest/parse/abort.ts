import { NixcasError } from '../../errors.ts'

/** The error an aborted parse fails with: the signal's reason when it is one of ours. */
export function abortError(signal: AbortSignal): NixcasError {
  const reason: unknown = signal.reason
  return reason instanceof NixcasError ? reason : new NixcasError('ABORTED', 'the upload was aborted', { cause: reason })
}
