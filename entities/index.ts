import { Agent } from './agent.entity';
import { ApiKey } from './api-key.entity';
import { AgentToolPermission } from './agent-tool-permission.entity';
import { AuditLog } from './audit-log.entity';
import { Execution } from './execution.entity';
import { ExecutionEvent } from './execution-event.entity';
import { ExecutionInput } from './execution-input.entity';
import { LoginAttempt } from './login-attempt.entity';
import { McpServer } from './mcp-server.entity';
import { Organization } from './organization.entity';
import { RateLimitCounter } from './rate-limit-counter.entity';
import { ServerTool } from './server-tool.entity';
import { Session } from './session.entity';
import { Task } from './task.entity';
import { ToolDefinition } from './tool-definition.entity';
import { User } from './user.entity';
import { Webhook } from './webhook.entity';
import { WebhookDelivery } from './webhook-delivery.entity';

export * from './agent.entity';
export * from './agent-tool-permission.entity';
export * from './api-key.entity';
export * from './audit-log.entity';
export * from './base.entity';
export * from './execution.entity';
export * from './execution-event.entity';
export * from './execution-input.entity';
export * from './login-attempt.entity';
export * from './mcp-server.entity';
export * from './organization.entity';
export * from './rate-limit-counter.entity';
export * from './server-tool.entity';
export * from './session.entity';
export * from './task.entity';
export * from './tool-definition.entity';
export * from './user.entity';
export * from './webhook.entity';
export * from './webhook-delivery.entity';

export const ENTITIES = [
  Organization,
  User,
  Session,
  McpServer,
  Agent,
  Task,
  Execution,
  ExecutionEvent,
  ExecutionInput,
  ToolDefinition,
  ServerTool,
  AgentToolPermission,
  AuditLog,
  LoginAttempt,
  RateLimitCounter,
  Webhook,
  WebhookDelivery,
  ApiKey,
];
