/**
 * google-auth-library alone, as the GCS store imports it for its own
 * requests' credentials: a loader that reads models needs it, but not the
 * storage client (src/vendor/gcs.ts). The build puts the library in a chunk
 * that both share.
 */
export {GoogleAuth, PassThroughClient} from 'google-auth-library'
