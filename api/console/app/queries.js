// The console's GraphQL documents. Each is sent by its SHA-256 hash
// (persisted queries) once the server has seen it.

export const LOGIN = `mutation Login($email: String!, $password: String!) {
  login(input: { email: $email, password: $password }) {
    token
    expiresAt
  }
}`;

export const LOGOUT = `mutation Logout { logout }`;

export const ME = `query Me {
  me {
    user { id name email }
    memberships { role unit { id key name kind } }
  }
}`;

const FLOW_SUMMARY = `
  throughput
  wipAtEnd
  cycleTime { p50 p85 }
  flowEfficiency { value }
  throughputByFlowType { flowType count share }
  throughputByWeek { week start count }`;

const OBJECTIVES = `
  objectives {
    id key title periodEnd progress
    keyResults { key title progress }
    delivery { total done progress }
    forecast(input: { trials: 2000 }) { remaining p85 probabilityByTarget }
  }`;

export const OVERVIEW = `query Overview($key: String!, $window: TimeWindowInput!) {
  unit(key: $key) {
    id key name kind
    ancestors { key name kind }
    flowMetrics(window: $window) {
      ${FLOW_SUMMARY}
      cumulativeFlow { date counts { state count } }
    }
    ${OBJECTIVES}
    children {
      id key name kind
      flowMetrics(window: $window) { ${FLOW_SUMMARY} }
      deliveryMetrics(window: $window) {
        deployments
        deploymentFrequency
        performance { deploymentFrequency leadTimeForChanges changeFailureRate timeToRestore }
      }
      ${OBJECTIVES}
      valueStreams { key name kind budget budgetPeriod costPerPeriod costPeriod }
    }
  }
}`;

export const FLOW_UPDATES = `subscription FlowUpdates($unit: ID!, $days: Int!) {
  flowMetricsUpdates(unit: $unit, lastDays: $days) {
    throughput
    wipAtEnd
    cycleTime { p85 }
    flowEfficiency { value }
  }
}`;

const CARD = `
  key title type flowType state blocked ageInState
  workItem { id parent { id } }
  assignee { name }
  children { total done inProgress blocked progress }`;

const COLUMN = `name category wipLimit count overLimit`;

export const UNIT = `query Unit($key: String!) {
  unit(key: $key) {
    id key name kind
    ancestors { key name kind valueStreams { id key name kind } }
    children { key name kind }
    valueStreams { id key name kind }
  }
}`;

export const BOARD = `query Board($unit: ID!, $lanes: WorkItemType!, $withLanes: Boolean!) {
  board(unit: $unit) {
    wipPolicy cardsVisible
    columns { ${COLUMN} cards(first: 100) { totalCount nodes { ${CARD} } } }
    lanes(itemType: $lanes) @include(if: $withLanes) {
      unit { key name }
      columns { ${COLUMN} cards(first: 8) { totalCount nodes { ${CARD} } } }
    }
  }
}`;

export const UNIT_FLOW = `query UnitFlow($unit: ID!, $window: TimeWindowInput!) {
  node(id: $unit) {
    ... on Unit {
      flowMetrics(window: $window) {
        throughput wipAtEnd
        cycleTime { p50 p85 }
        agingWip { count p50 p85 }
        oldestWip { age workItem { key title state } }
        cumulativeFlow { date counts { state count } }
      }
    }
  }
}`;

export const MOVE = `mutation Move($item: ID!, $state: String!, $position: CardPosition) {
  moveWorkItem(input: { workItem: $item, toState: $state, position: $position }) {
    wipLimitExceeded
    workItem { key state }
  }
}`;

export const BOARD_EVENTS = `subscription BoardEvents($unit: ID!) {
  boardEvents(unit: $unit) { kind at lane { key } }
}`;

export const TEAM_INSIGHTS = `query TeamInsights($unit: ID!, $window: TimeWindowInput!) {
  workItems(unit: $unit, filter: { stateCategories: [DONE], scope: UNIT_ONLY }, first: 100) {
    nodes { key title transitions { toCategory at } }
  }
  node(id: $unit) {
    ... on Unit {
      flowMetrics(window: $window) { cycleTime { count p50 p85 } }
      throughputForecast(days: 14, input: { trials: 2000 }) { days p50 p85 p95 sampleCompleted }
    }
  }
}`;

/** "When will it be done?" for several items at once (a team's features, its cards with children). */
export const ITEM_FORECASTS = `query ItemForecasts($ids: [ID!]!) {
  nodes(ids: $ids) {
    ... on WorkItem {
      id key title type state stateCategory
      forecast(input: { trials: 2000 }) { remaining p50 p85 sampleCompleted }
    }
  }
}`;

export const VALUE_STREAM_MAP = `query ValueStreamMap($stream: ID!, $window: TimeWindowInput!) {
  valueStreamMap(valueStream: $stream, window: $window) {
    items
    leadTime { mean }
    processTime { mean }
    waitTime { mean }
    activityRatio { value }
    rolledCompleteAndAccurate
    stages { name valueAdding items processTime { mean } waitTime { mean } completeAndAccurate { value } }
  }
}`;

export const TREE = `query Tree {
  organization {
    key name kind
    descendants { key name kind parent { key } }
  }
}`;
