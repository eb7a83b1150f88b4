import type { Cas } from '../cas/cas.ts'
import { parseDebugInfo, parseDebugInfoName, renderDebugInfo } from '../nix/debuginfo.ts'

/**
 * The debug info index (`nix copy --to '…?index-debug-info=true'`, read by dwarffs):
 * `debuginfo/<build-id>.debug` → `{"archive":"../nar/<file hash>.nar.xz","member":…}`.
 *
 * The archive is not required to exist yet: Nix writes these entries while it uploads
 * the NAR they point at, before its narinfo. Every NAR file name an upload was acknowledged
 * under stays fetchable, so an entry written by Nix keeps resolving. The last upload of an
 * entry wins: it is an index, unsigned, and Nix itself only writes one when none exists.
 */
export class DebugInfoIndex {
  constructor(private readonly cas: Cas) {}

  async put(name: string, text: string): Promise<void> {
    const buildId = parseDebugInfoName(name)
    await this.cas.putDebugInfo(buildId, renderDebugInfo(parseDebugInfo(text, buildId)))
  }

  async get(name: string): Promise<string | undefined> {
    return this.cas.getDebugInfo(parseDebugInfoName(name))
  }
}
