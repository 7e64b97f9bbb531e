/**
 * The Google Cloud Storage client, as the rest of mlops imports it: loaded
 * only by what writes or deletes small objects (push's manifest, alias, remove),
 * never by a read (src/store/gcs.ts). The build bundles it into a chunk
 * of its own (scripts/bundle.js).
 */
export {type File, Storage} from '@google-cloud/storage'
