/**
 * Configuration of `nixcas serve`: the settings table (config/settings.ts) and what is
 * derived from it. Kept as one entry point for the rest of the code.
 */
export { parseConfigText, readConfigFile, storeConfigOf } from './config/file.ts'
export { DEFAULT_CONFIG_FILE, packageVersion } from './config/paths.ts'
export { resolveConfiguration, resolveServerConfig, type ResolvedConfiguration, type ServeFlags, type ServerConfig, type SettingValues } from './config/server-config.ts'
export { settings } from './config/settings.ts'
export { loadKeys, type Keys } from './config/keys.ts'
export { prepareServer, type Prepared } from './config/prepare.ts'
export { effectiveSettings, settingsReference } from './config/docs.ts'
