/**
 * The custom search attributes a reproduction keeps up to date, so runs can be filtered in the
 * Temporal UI and by `pneumogan list`. Plain data (workflow code imports it): a server must have
 * them registered before a run starts (the embedded dev server and the compose stack register
 * them at start; on another cluster: `temporal operator search-attribute create --name <name>
 * --type Keyword` for each).
 */
export const SEARCH_ATTRIBUTES = {
  /** The pipeline preset the run was configured from. */
  preset: 'PneumoganPreset',
  /** sha256 of the ingested dataset's manifest (set once ingestion is done). */
  datasetSha256: 'PneumoganDatasetSha256',
  /** The run's stage: ingesting, training, reporting, completed, failed or cancelled. */
  status: 'PneumoganStatus',
} as const;

/** All are Keyword attributes (exact match, the Temporal UI's filter). */
export const SEARCH_ATTRIBUTE_TYPE = 'Keyword';

export type RunStatus = 'ingesting' | 'training' | 'reporting' | 'completed' | 'failed' | 'cancelled';

/** `temporal server start-dev` flags that register them. */
export function devServerSearchAttributeArgs(): string[] {
  return Object.values(SEARCH_ATTRIBUTES).flatMap((name) => ['--search-attribute', `${name}=${SEARCH_ATTRIBUTE_TYPE}`]);
}
