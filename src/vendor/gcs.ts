/**
 * The Google Cloud Storage client, as the rest of mlops imports it: loaded
 * only by what lists, writes or deletes (push, list, alias, remove), never by
 * the loader's read path (src/store/gcs.ts). The build bundles it into a chunk
 * of its own (scripts/bundle.js).
 */
export {type File, Storage} from '@google-cloud/storage'
