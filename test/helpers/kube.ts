/**
 * Whether the API server has an object: 200 when `read` gets it, 404 when the
 * server says it does not exist. Any other answer (403, a refused connection)
 * fails the test: it says nothing about the object.
 */
export async function apiStatus(read: () => Promise<unknown>): Promise<200 | 404> {
  try {
    await read()
    return 200
  } catch (error) {
    if ((error as {code?: number}).code === 404) return 404
    throw error
  }
}
