import {mkdir, readFile} from 'node:fs/promises'
import {join} from 'node:path'

import {withFileLock, writeFileAtomic} from '../util/fs-atomic.js'
import type {Component} from '../images/names.js'
import type {Platform} from '../images/platforms.js'

/**
 * .mlops/state.json: what this project last pushed (so deploy can pin images
 * by digest) and what runs on the local and docker targets (so status,
 * predict and delete find it).
 */
export interface ProjectState {
  images?: Partial<Record<Component, PushedImage>>
  local?: LocalDeployment
  docker?: DockerDeployment
}

/** An image as image push left it: deploy pins `pinned`; `platforms` are those its digest serves (an index's entries). */
export interface PushedImage {
  ref: string
  digest: string
  pinned: string
  pushedAt: string
  platforms?: Platform[]
}

/** The local target: the mlops serve process deploy started, and its work folder. */
export interface LocalDeployment {
  pid: number
  /** The token the server was started with, answered with its pid at INSTANCE_PATH. */
  instance?: string
  url: string
  model: string
  sha256: string
  workdir: string
  log: string
  startedAt: string
}

/** The docker target: the API container deploy started, and its volume. */
export interface DockerDeployment {
  container: string
  url: string
  model: string
  sha256: string
  volume: string
  startedAt: string
}

export function statePath(projectDir: string): string {
  return join(projectDir, '.mlops', 'state.json')
}

export async function readState(projectDir: string): Promise<ProjectState> {
  try {
    return JSON.parse(await readFile(statePath(projectDir), 'utf8')) as ProjectState
  } catch {
    return {}
  }
}

/** Read-modify-write under a lock, written through a temporary file and a rename. */
export async function updateState(projectDir: string, change: (state: ProjectState) => void): Promise<ProjectState> {
  const path = statePath(projectDir)
  await mkdir(join(projectDir, '.mlops'), {recursive: true})
  return withFileLock(path, async () => {
    const state = await readState(projectDir)
    change(state)
    await writeFileAtomic(path, async file => {
      await file.writeFile(`${JSON.stringify(state, null, 2)}\n`)
    })
    return state
  })
}
