package web

// words are the page's texts per language. zh is the default: the
// operators and integrators on site read Chinese.
var words = map[string]map[string]string{
	"zh": {
		"title": "hazgate 网关状态", "gateway": "网关", "version": "版本", "uptime": "运行时间", "now": "当前时间",
		"broker": "上级平台连接", "connected": "已连接", "disconnected": "未连接",
		"buffer": "本地缓存", "buf_events": "待发事件", "buf_data": "待发数据", "buf_bytes": "占用空间",
		"buf_oldest": "最早未发", "buf_dropped": "因容量丢弃", "buf_acked": "平台已确认", "buf_error": "写入失败",
		"health": "健康检查", "healthy": "正常", "unhealthy": "异常",
		"devices": "设备", "device": "设备", "state": "状态",
		"state_up": "在线", "state_down": "离线", "state_backoff": "离线（等待重连）", "state_starting": "启动中", "state_stopped": "已停止",
		"tag": "位号", "description": "描述", "value": "值", "unit": "单位", "quality": "质量", "reason": "原因", "time": "采集时间", "alarm": "报警",
		"q_good": "好", "q_bad": "坏", "q_uncertain": "可疑",
		"normal": "正常",
		"active": "当前报警", "none": "无当前报警", "level": "级别", "colour": "颜色", "since": "发生时间", "limit": "限值", "acked": "确认",
		"as_active_unacked": "报警未确认", "as_active_acked": "报警已确认", "as_returned_unacked": "已恢复未确认", "as_normal": "正常",
		"lv_hh": "高高", "lv_h": "高", "lv_l": "低", "lv_ll": "低低", "lv_roc": "变化率", "lv_dev": "偏差", "lv_fault": "故障",
		"interlocks": "联锁", "il_normal": "正常", "il_tripped": "已动作", "il_first": "首出", "il_until": "旁路至",
		"condition": "条件成立", "bypass": "旁路", "failed_outputs": "输出失败", "yes": "是", "no": "否",
		"refresh": "每 2 秒自动刷新", "paused": "刷新失败，稍后重试",
	},
	"en": {
		"title": "hazgate gateway status", "gateway": "Gateway", "version": "Version", "uptime": "Uptime", "now": "Now",
		"broker": "Platform link", "connected": "connected", "disconnected": "disconnected",
		"buffer": "Local buffer", "buf_events": "Events waiting", "buf_data": "Samples waiting", "buf_bytes": "Size",
		"buf_oldest": "Oldest waiting", "buf_dropped": "Dropped (full)", "buf_acked": "Acknowledged", "buf_error": "Write failed",
		"health": "Health", "healthy": "OK", "unhealthy": "failing",
		"devices": "Devices", "device": "Device", "state": "State",
		"state_up": "up", "state_down": "down", "state_backoff": "down (waiting to retry)", "state_starting": "starting", "state_stopped": "stopped",
		"tag": "Tag", "description": "Description", "value": "Value", "unit": "Unit", "quality": "Quality", "reason": "Reason", "time": "Time", "alarm": "Alarm",
		"q_good": "good", "q_bad": "bad", "q_uncertain": "uncertain",
		"normal": "normal",
		"active": "Active alarms", "none": "No active alarms", "level": "Level", "colour": "Colour", "since": "Since", "limit": "Limit", "acked": "Acknowledged",
		"as_active_unacked": "active, unacknowledged", "as_active_acked": "active, acknowledged", "as_returned_unacked": "returned, unacknowledged", "as_normal": "normal",
		"lv_hh": "HH", "lv_h": "H", "lv_l": "L", "lv_ll": "LL", "lv_roc": "rate", "lv_dev": "deviation", "lv_fault": "fault",
		"interlocks": "Interlocks", "il_normal": "normal", "il_tripped": "tripped", "il_first": "first out", "il_until": "bypassed until",
		"condition": "Condition holds", "bypass": "Bypass", "failed_outputs": "Failed outputs", "yes": "yes", "no": "no",
		"refresh": "refreshes every 2 s", "paused": "refresh failed, retrying",
	},
}
