/** Store defaults, in a module of their own so that the pod contract can name them without loading a store. */
export const DEFAULT_STORE_TIMEOUT_SECONDS = 30
export const DEFAULT_LOCAL_STORE = '.mlops/store'
