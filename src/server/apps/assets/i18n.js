// zh-CN and en-US for every text of the apps. The language comes from the
// browser, can be switched, and is remembered. API problems are translated
// from their stable `code`; the server's `detail` is shown only where no
// translation fits.

const LANG_KEY = "tandem.lang";
export const LANGS = ["zh-CN", "en-US"];

const en = {
  "nav.chats": "Chats", "nav.feed": "Feed", "nav.trips": "Trips", "nav.shop": "Shop", "nav.me": "Me",
  "nav.orders": "My orders", "nav.wallet": "Wallet", "nav.promo": "Promotion center", "nav.flowers": "Send flowers",
  "nav.animals": "Claim an animal", "nav.notifications": "Notifications", "nav.merchant_console": "Merchant console",
  "nav.admin_console": "Admin console", "nav.member_app": "Member app",
  "common.more": "Load more", "common.empty": "Nothing here yet.", "common.save": "Save", "common.saved": "Saved.",
  "common.search": "Search", "lang.label": "Language",
  "auth.login": "Log in", "auth.logout": "Log out", "auth.signup": "Sign up", "auth.username": "Username",
  "auth.password": "Password", "auth.username_rules": "Username (3-32 letters, digits or _)",
  "auth.password_rules": "Password (8-128 characters)", "auth.invite_code": "Invite code (optional)",
  "auth.no_account": "New here? Sign up", "auth.have_account": "Have an account? Log in",
  "auth.ended.banned": "Your account was banned. You have been logged out.",
  "auth.ended.expired": "Your session ended. Please log in again.", "auth.ended.logout": "You logged out.",
  "chat.title": "Chats", "chat.none": "No conversations yet: find someone above.", "chat.group": "Group",
  "chat.kind.direct": "direct", "chat.kind.group": "group", "chat.kind.trip": "trip",
  "chat.unread": "{n} unread", "chat.older": "Older messages", "chat.message": "Message", "chat.send": "Send",
  "chat.sent": "Sent", "chat.read": "Read", "chat.typing": "{name} is typing…", "chat.deleted": "(deleted)",
  "chat.entry.member_added": "A member joined", "chat.entry.member_removed": "A member left",
  "chat.entry.renamed": "The group was renamed", "chat.entry.admin_changed": "Group admins changed",
  "chat.entry.owner_changed": "The group has a new owner", "chat.entry.history_changed": "Who may read earlier messages changed",
  "admin.unban_by_id": "Unban a member by id", "admin.user_id": "User id",
  "users.search": "Find people", "users.follow": "Follow", "users.unfollow": "Unfollow", "users.message": "Message",
  "users.counts": "{followers} followers · {following} following · {posts} posts", "users.none": "No one found.",
  "feed.title": "Feed", "feed.new_post": "What's new?", "feed.publish": "Post", "feed.like": "Like",
  "feed.comment": "Comment", "feed.comments": "{n} comments", "feed.empty": "Follow people to see their posts.",
  "notifications.title": "Notifications",
  "me.display_name": "Display name", "me.bio": "About you",
  "trips.title": "Companion trips", "trips.destination": "Destination", "trips.from": "From", "trips.to": "To",
  "trips.start": "Start date", "trips.end": "End date", "trips.capacity": "Capacity (2-50, you included)",
  "trips.description": "Description", "trips.publish": "Publish a trip", "trips.none": "No open trips match.",
  "trips.join": "Ask to join", "trips.join_message": "A word to the organizer", "trips.requested": "Request sent: the organizer decides.",
  "trips.members": "{n} of {capacity} places taken", "trips.chat": "Open the trip's group chat", "trips.requests": "Join requests",
  "trips.no_requests": "No requests.", "trips.accept": "Accept", "trips.reject": "Reject",
  "animals.none": "No animals to claim yet.", "animals.claim": "Claim for {price} ({days} days)", "animals.days": "{n} days",
  "animals.yours": "Yours until {until}", "animals.taken": "Claimed by someone else.", "animals.updates": "News from the farm",
  "animals.no_updates": "No news yet.",
  "shop.title": "Shop", "shop.search": "Product name", "shop.category": "Category", "shop.none": "No products.",
  "shop.quantity": "Quantity", "shop.address": "Shipping address", "shop.buy": "Buy now", "shop.stock": "{n} in stock",
  "shop.merchant": "The shop", "shop.sold_out": "Sold out.", "shop.rating": "Rating {avg} ({n} reviews)", "shop.reviews": "Reviews",
  "orders.none": "No orders yet.", "orders.gifts_received": "Gifts for you", "orders.order": "Order #{id}",
  "orders.total": "Total", "orders.pay": "Pay", "orders.cancel": "Cancel order", "orders.confirm": "Confirm receipt",
  "orders.refund": "Request a refund", "orders.refund_reason": "Why?", "orders.refund_requested": "Refund requested: the shop decides.",
  "orders.rating": "Rating", "orders.review": "Your review", "orders.send_review": "Send review", "orders.reviewed": "Thanks for your review.",
  "orders.gift_to": "A gift for", "orders.tracking": "Tracking:",
  "flowers.intro": "Send flowers to a friend: they give the address.", "flowers.recipient": "Friend's username",
  "flowers.message": "Card message", "flowers.send": "Send ({price})", "flowers.no_such_user": "No user with that username.",
  "flowers.none": "No flowers on sale right now.",
  "wallet.pending": "Pending", "wallet.available": "Available", "wallet.withdrawing": "Withdrawing", "wallet.withdrawn": "Withdrawn",
  "wallet.amount": "Amount (¥)", "wallet.withdraw": "Withdraw", "wallet.bad_amount": "Enter an amount like 12.50.",
  "wallet.rebates": "Rebates", "wallet.no_rebates": "No rebates yet.", "wallet.withdrawals": "Withdrawals", "wallet.no_withdrawals": "No withdrawals yet.",
  "rebate.purchase": "Purchase rebate", "rebate.referral_1": "Invitee's order", "rebate.referral_2": "2nd-level order", "rebate.referral_3": "3rd-level order",
  "promo.code": "Your invite code:", "promo.link": "Invite link", "promo.copy": "Copy link", "promo.copied": "Link copied.",
  "promo.totals": "{n} invited · {total} earned from their orders", "promo.invitees": "People you invited",
  "promo.none": "No one yet: share your link.", "promo.orders": "{n} orders",
  "checkout.title": "Mockpay checkout", "checkout.order": "Paying Tandem order #{id}", "checkout.confirm": "Confirm payment",
  "checkout.decline": "Decline", "checkout.note": "A test provider: no real money moves.", "checkout.login_first": "Log in to pay.",
  "merchant.shops": "My shops", "merchant.apply": "Apply for a shop", "merchant.name": "Shop name",
  "merchant.denied": "Log in to use the merchant console.",
  "merchant.tab.shop": "Dashboard", "merchant.tab.products": "Products", "merchant.tab.orders": "Orders",
  "merchant.tab.refunds": "Refunds", "merchant.tab.reviews": "Reviews", "merchant.tab.animals": "Animals",
  "merchant.gmv_today": "Paid today", "merchant.gmv_7d": "Paid, last 7 days", "merchant.rating": "Rating",
  "merchant.top_products": "Best sellers (7 days)", "merchant.stock_delta": "Add to stock (negative removes)",
  "merchant.price": "Price (¥)", "merchant.product_name": "Product name", "merchant.stock": "Stock", "merchant.add_product": "Add product",
  "merchant.status": "Status", "merchant.carrier": "Carrier", "merchant.tracking_no": "Tracking number", "merchant.ship": "Ship",
  "merchant.approve_refund": "Approve refund", "merchant.reject_refund": "Reject refund", "merchant.no_refunds": "No refunds to decide.",
  "merchant.no_reviews": "No reviews yet.", "merchant.animal_update": "News for the claimer", "merchant.post_update": "Post news",
  "merchant.new_animal": "A new animal", "merchant.animal_name": "Name", "merchant.species": "Species",
  "merchant.claim_price": "Claim price (¥)", "merchant.claim_days": "Claim days", "merchant.add_animal": "Add animal",
  "admin.denied": "Only admins may use this console.",
  "admin.tab.stats": "Statistics", "admin.tab.users": "Users", "admin.tab.merchants": "Merchants", "admin.tab.orders": "Orders",
  "admin.tab.rules": "Rebate rules", "admin.tab.withdrawals": "Withdrawals", "admin.tab.reports": "Reports",
  "admin.stats.users": "Users", "admin.stats.online_users": "Online now", "admin.stats.orders_today": "Orders today",
  "admin.stats.gmv_today": "Paid today", "admin.stats.rebates_pending": "Rebates pending", "admin.stats.open_reports": "Open reports",
  "admin.chart.orders": "Orders per day", "admin.chart.gmv": "Paid per day", "admin.generated": "As of {at}",
  "admin.ban": "Ban", "admin.unban": "Unban", "admin.approve": "Approve", "admin.reject": "Reject", "admin.owner": "owner",
  "admin.buyer": "buyer", "admin.buyer_id": "Buyer id", "admin.merchant_id": "Merchant id", "admin.user": "user",
  "admin.rule.title": "Rule {n}", "admin.rule.add": "Add a rule", "admin.rule.levels": "Referral levels (basis points)",
  "admin.rule.version": "Version {v}", "admin.rule.name": "Name", "admin.rule.merchant_id": "Merchant id",
  "admin.rule.category": "Category", "admin.rule.rate_bps": "Rate (basis points)", "admin.rule.fixed_cents": "Fixed (cents)",
  "admin.rule.min_order_cents": "Minimum order (cents)", "admin.rule.cap_cents": "Cap (cents)",
  "admin.rule.starts_at": "Starts at (RFC 3339)", "admin.rule.ends_at": "Ends at (RFC 3339)", "admin.rule.priority": "Priority",
  "admin.rule.referral_levels_bps": "Level (basis points)", "admin.rule.hold_seconds": "Hold after completion (seconds)",
  "admin.target.post": "Post", "admin.target.message": "Message", "admin.target.user": "User",
  "admin.action.dismiss": "Dismiss", "admin.action.remove_content": "Remove content", "admin.action.ban_user": "Ban user",
  "status.pending_payment": "Awaiting payment", "status.paid": "Paid", "status.shipped": "Shipped", "status.completed": "Completed",
  "status.cancelled": "Cancelled", "status.refunded": "Refunded", "status.pending": "Pending", "status.approved": "Approved",
  "status.rejected": "Rejected", "status.available": "Available", "status.reversed": "Reversed", "status.open": "Open",
  "status.full": "Full", "status.closed": "Closed", "status.accepted": "Accepted", "status.dismissed": "Dismissed",
  "status.removed": "Removed", "status.banned": "Banned", "status.claimed": "Claimed",
  "notification.order.paid": "Order paid", "notification.order.shipped": "Order shipped", "notification.order.completed": "Order completed",
  "notification.order.cancelled": "Order cancelled", "notification.order.expired": "Order expired unpaid",
  "notification.order.refund_requested": "Refund requested", "notification.order.refunded": "Order refunded",
  "notification.order.refund_rejected": "Refund rejected", "notification.order.address_given": "Gift address given",
  "notification.gift.received": "You received a gift", "notification.rebate.pending": "A rebate is pending",
  "notification.rebate.available": "A rebate is available", "notification.rebate.reversed": "A rebate was reversed",
  "notification.rebate.cancelled": "A rebate was cancelled", "notification.user.followed": "Someone followed you",
  "notification.moderation.content_removed": "Your content was removed", "notification.trip.join_requested": "Someone asks to join your trip",
  "notification.trip.join_accepted": "You joined the trip", "notification.trip.join_rejected": "Your trip request was declined",
  "notification.trip.member_left": "A member left your trip", "notification.trip.closed": "A trip was closed",
  "notification.animal.update": "News from your animal", "notification.animal.claim_ended": "Your claim ended",
  "error.network": "Cannot reach the server. Check your connection.", "error.invalid_input": "Please check what you entered.",
  "error.malformed_body": "The request was malformed.", "error.unauthorized": "Please log in.", "error.invalid_credentials": "Wrong username or password.",
  "error.invalid_signature": "Invalid signature.", "error.forbidden": "You may not do that.", "error.not_found": "Not found.",
  "error.username_taken": "That username is taken.", "error.out_of_stock": "Not enough stock.", "error.invalid_state": "Not possible in this state.",
  "error.payload_too_large": "Too large.", "error.idempotency_key_reused": "This request was already made differently.",
  "error.idempotency_conflict": "The same request is still running.", "error.rate_limited": "Too many requests: wait a moment.",
  "error.unavailable": "Temporarily unavailable: try again.", "error.internal": "Something went wrong on our side.",
  "error.already_claimed": "Already claimed.", "error.already_member": "Already a member.", "error.already_reported": "Already reported.",
  "error.already_reviewed": "Already reviewed.", "error.blocked": "Blocked.", "error.insufficient_funds": "Not enough available balance.",
  "error.not_a_member": "Not a member.", "error.product_inactive": "This product is not on sale.", "error.request_pending": "You already asked.",
  "error.retry_invite_code": "Please try again.", "error.trip_full": "The trip is full.", "error.unsupported_media": "Unsupported picture.",
  "error.method_not_allowed": "Not allowed.",
};

const zh = {
  "nav.chats": "聊天", "nav.feed": "动态", "nav.trips": "结伴", "nav.shop": "商城", "nav.me": "我的",
  "nav.orders": "我的订单", "nav.wallet": "钱包", "nav.promo": "推广中心", "nav.flowers": "送花",
  "nav.animals": "认领动物", "nav.notifications": "通知", "nav.merchant_console": "商家后台",
  "nav.admin_console": "管理后台", "nav.member_app": "会员端",
  "common.more": "加载更多", "common.empty": "暂无内容。", "common.save": "保存", "common.saved": "已保存。",
  "common.search": "搜索", "lang.label": "语言",
  "auth.login": "登录", "auth.logout": "退出登录", "auth.signup": "注册", "auth.username": "用户名",
  "auth.password": "密码", "auth.username_rules": "用户名（3-32 位字母、数字或 _）",
  "auth.password_rules": "密码（8-128 个字符）", "auth.invite_code": "邀请码（可选）",
  "auth.no_account": "没有账号？注册", "auth.have_account": "已有账号？登录",
  "auth.ended.banned": "您的账号已被封禁，已退出登录。",
  "auth.ended.expired": "登录已失效，请重新登录。", "auth.ended.logout": "您已退出登录。",
  "chat.title": "聊天", "chat.none": "还没有会话：在上方找人聊天。", "chat.group": "群聊",
  "chat.kind.direct": "私聊", "chat.kind.group": "群聊", "chat.kind.trip": "结伴群",
  "chat.unread": "{n} 条未读", "chat.older": "更早的消息", "chat.message": "消息", "chat.send": "发送",
  "chat.sent": "已发送", "chat.read": "已读", "chat.typing": "{name} 正在输入…", "chat.deleted": "（已删除）",
  "chat.entry.member_added": "有新成员加入", "chat.entry.member_removed": "有成员离开",
  "chat.entry.renamed": "群名已修改", "chat.entry.admin_changed": "群管理员已变更",
  "chat.entry.owner_changed": "群主已变更", "chat.entry.history_changed": "新成员可见的历史已变更",
  "admin.unban_by_id": "按 ID 解封用户", "admin.user_id": "用户 ID",
  "users.search": "找人", "users.follow": "关注", "users.unfollow": "取消关注", "users.message": "发消息",
  "users.counts": "{followers} 粉丝 · {following} 关注 · {posts} 动态", "users.none": "没有找到。",
  "feed.title": "动态", "feed.new_post": "有什么新鲜事？", "feed.publish": "发布", "feed.like": "赞",
  "feed.comment": "评论", "feed.comments": "{n} 条评论", "feed.empty": "关注别人即可看到他们的动态。",
  "notifications.title": "通知",
  "me.display_name": "昵称", "me.bio": "个人简介",
  "trips.title": "结伴出行", "trips.destination": "目的地", "trips.from": "开始", "trips.to": "结束",
  "trips.start": "出发日期", "trips.end": "返回日期", "trips.capacity": "人数（2-50，含您自己）",
  "trips.description": "描述", "trips.publish": "发布结伴", "trips.none": "没有符合条件的结伴。",
  "trips.join": "申请加入", "trips.join_message": "给发起人留言", "trips.requested": "已申请，等待发起人确认。",
  "trips.members": "已有 {n} / {capacity} 人", "trips.chat": "进入结伴群聊", "trips.requests": "加入申请",
  "trips.no_requests": "暂无申请。", "trips.accept": "同意", "trips.reject": "拒绝",
  "animals.none": "暂无可认领的动物。", "animals.claim": "认领 {price}（{days} 天）", "animals.days": "{n} 天",
  "animals.yours": "您认领至 {until}", "animals.taken": "已被他人认领。", "animals.updates": "农场动态",
  "animals.no_updates": "暂无动态。",
  "shop.title": "商城", "shop.search": "商品名称", "shop.category": "分类", "shop.none": "暂无商品。",
  "shop.quantity": "数量", "shop.address": "收货地址", "shop.buy": "立即购买", "shop.stock": "库存 {n}",
  "shop.merchant": "店铺", "shop.sold_out": "已售罄。", "shop.rating": "评分 {avg}（{n} 条评价）", "shop.reviews": "评价",
  "orders.none": "暂无订单。", "orders.gifts_received": "收到的礼物", "orders.order": "订单 #{id}",
  "orders.total": "合计", "orders.pay": "去支付", "orders.cancel": "取消订单", "orders.confirm": "确认收货",
  "orders.refund": "申请退款", "orders.refund_reason": "退款原因", "orders.refund_requested": "已申请退款，等待商家处理。",
  "orders.rating": "评分", "orders.review": "您的评价", "orders.send_review": "提交评价", "orders.reviewed": "感谢您的评价。",
  "orders.gift_to": "送给", "orders.tracking": "物流：",
  "flowers.intro": "给朋友送花：对方填写收货地址。", "flowers.recipient": "朋友的用户名",
  "flowers.message": "贺卡留言", "flowers.send": "赠送（{price}）", "flowers.no_such_user": "没有这个用户名。",
  "flowers.none": "暂无在售鲜花。",
  "wallet.pending": "待结算", "wallet.available": "可提现", "wallet.withdrawing": "提现中", "wallet.withdrawn": "已提现",
  "wallet.amount": "金额（元）", "wallet.withdraw": "提现", "wallet.bad_amount": "请输入金额，例如 12.50。",
  "wallet.rebates": "返利记录", "wallet.no_rebates": "暂无返利。", "wallet.withdrawals": "提现记录", "wallet.no_withdrawals": "暂无提现。",
  "rebate.purchase": "购物返利", "rebate.referral_1": "一级分销", "rebate.referral_2": "二级分销", "rebate.referral_3": "三级分销",
  "promo.code": "您的邀请码：", "promo.link": "邀请链接", "promo.copy": "复制链接", "promo.copied": "已复制。",
  "promo.totals": "已邀请 {n} 人 · 佣金 {total}", "promo.invitees": "我邀请的人",
  "promo.none": "还没有人：分享您的链接吧。", "promo.orders": "{n} 笔订单",
  "checkout.title": "Mockpay 收银台", "checkout.order": "支付 Tandem 订单 #{id}", "checkout.confirm": "确认支付",
  "checkout.decline": "放弃支付", "checkout.note": "测试支付渠道：不会真实扣款。", "checkout.login_first": "请先登录再支付。",
  "merchant.shops": "我的店铺", "merchant.apply": "申请开店", "merchant.name": "店铺名称",
  "merchant.denied": "请登录后使用商家后台。",
  "merchant.tab.shop": "概览", "merchant.tab.products": "商品", "merchant.tab.orders": "订单",
  "merchant.tab.refunds": "退款", "merchant.tab.reviews": "评价", "merchant.tab.animals": "认领动物",
  "merchant.gmv_today": "今日成交", "merchant.gmv_7d": "近 7 天成交", "merchant.rating": "评分",
  "merchant.top_products": "热销商品（7 天）", "merchant.stock_delta": "增加库存（负数为减少）",
  "merchant.price": "价格（元）", "merchant.product_name": "商品名称", "merchant.stock": "库存", "merchant.add_product": "添加商品",
  "merchant.status": "状态", "merchant.carrier": "快递公司", "merchant.tracking_no": "运单号", "merchant.ship": "发货",
  "merchant.approve_refund": "同意退款", "merchant.reject_refund": "拒绝退款", "merchant.no_refunds": "没有待处理的退款。",
  "merchant.no_reviews": "暂无评价。", "merchant.animal_update": "给认领人的动态", "merchant.post_update": "发布动态",
  "merchant.new_animal": "新增动物", "merchant.animal_name": "名字", "merchant.species": "品种",
  "merchant.claim_price": "认领价格（元）", "merchant.claim_days": "认领天数", "merchant.add_animal": "添加动物",
  "admin.denied": "仅管理员可使用此后台。",
  "admin.tab.stats": "统计", "admin.tab.users": "用户", "admin.tab.merchants": "商家", "admin.tab.orders": "订单",
  "admin.tab.rules": "返利规则", "admin.tab.withdrawals": "提现", "admin.tab.reports": "举报",
  "admin.stats.users": "用户数", "admin.stats.online_users": "在线", "admin.stats.orders_today": "今日订单",
  "admin.stats.gmv_today": "今日成交", "admin.stats.rebates_pending": "待结算返利", "admin.stats.open_reports": "待处理举报",
  "admin.chart.orders": "每日订单", "admin.chart.gmv": "每日成交额", "admin.generated": "统计时间 {at}",
  "admin.ban": "封禁", "admin.unban": "解封", "admin.approve": "通过", "admin.reject": "拒绝", "admin.owner": "店主",
  "admin.buyer": "买家", "admin.buyer_id": "买家 ID", "admin.merchant_id": "商家 ID", "admin.user": "用户",
  "admin.rule.title": "规则 {n}", "admin.rule.add": "添加规则", "admin.rule.levels": "分销层级（基点）",
  "admin.rule.version": "版本 {v}", "admin.rule.name": "名称", "admin.rule.merchant_id": "商家 ID",
  "admin.rule.category": "分类", "admin.rule.rate_bps": "比例（基点）", "admin.rule.fixed_cents": "固定金额（分）",
  "admin.rule.min_order_cents": "最低订单金额（分）", "admin.rule.cap_cents": "封顶（分）",
  "admin.rule.starts_at": "开始时间（RFC 3339）", "admin.rule.ends_at": "结束时间（RFC 3339）", "admin.rule.priority": "优先级",
  "admin.rule.referral_levels_bps": "层级（基点）", "admin.rule.hold_seconds": "完成后冻结（秒）",
  "admin.target.post": "动态", "admin.target.message": "消息", "admin.target.user": "用户",
  "admin.action.dismiss": "驳回", "admin.action.remove_content": "删除内容", "admin.action.ban_user": "封禁用户",
  "status.pending_payment": "待支付", "status.paid": "已支付", "status.shipped": "已发货", "status.completed": "已完成",
  "status.cancelled": "已取消", "status.refunded": "已退款", "status.pending": "待处理", "status.approved": "已通过",
  "status.rejected": "已拒绝", "status.available": "可提现", "status.reversed": "已冲回", "status.open": "进行中",
  "status.full": "已满员", "status.closed": "已关闭", "status.accepted": "已同意", "status.dismissed": "已驳回",
  "status.removed": "已删除", "status.banned": "已封禁", "status.claimed": "已认领",
  "notification.order.paid": "订单已支付", "notification.order.shipped": "订单已发货", "notification.order.completed": "订单已完成",
  "notification.order.cancelled": "订单已取消", "notification.order.expired": "订单超时未支付",
  "notification.order.refund_requested": "有退款申请", "notification.order.refunded": "订单已退款",
  "notification.order.refund_rejected": "退款被拒绝", "notification.order.address_given": "礼物地址已填写",
  "notification.gift.received": "您收到一份礼物", "notification.rebate.pending": "有一笔返利待结算",
  "notification.rebate.available": "有一笔返利可提现", "notification.rebate.reversed": "有一笔返利被冲回",
  "notification.rebate.cancelled": "有一笔返利被取消", "notification.user.followed": "有人关注了您",
  "notification.moderation.content_removed": "您的内容已被删除", "notification.trip.join_requested": "有人申请加入您的结伴",
  "notification.trip.join_accepted": "您已加入结伴", "notification.trip.join_rejected": "您的结伴申请被拒绝",
  "notification.trip.member_left": "有成员退出了结伴", "notification.trip.closed": "结伴已关闭",
  "notification.animal.update": "您认领的动物有新动态", "notification.animal.claim_ended": "认领已到期",
  "error.network": "无法连接服务器，请检查网络。", "error.invalid_input": "请检查输入内容。",
  "error.malformed_body": "请求格式错误。", "error.unauthorized": "请先登录。", "error.invalid_credentials": "用户名或密码错误。",
  "error.invalid_signature": "签名无效。", "error.forbidden": "无权操作。", "error.not_found": "未找到。",
  "error.username_taken": "用户名已被占用。", "error.out_of_stock": "库存不足。", "error.invalid_state": "当前状态下无法操作。",
  "error.payload_too_large": "内容过大。", "error.idempotency_key_reused": "该请求已以不同内容提交过。",
  "error.idempotency_conflict": "相同请求仍在处理中。", "error.rate_limited": "操作太频繁，请稍后再试。",
  "error.unavailable": "服务暂时不可用，请重试。", "error.internal": "服务器出错了。",
  "error.already_claimed": "已被认领。", "error.already_member": "已是成员。", "error.already_reported": "已举报过。",
  "error.already_reviewed": "已评价过。", "error.blocked": "已被拉黑。", "error.insufficient_funds": "可提现余额不足。",
  "error.not_a_member": "不是成员。", "error.product_inactive": "该商品已下架。", "error.request_pending": "您已申请过。",
  "error.retry_invite_code": "请重试。", "error.trip_full": "结伴已满员。", "error.unsupported_media": "不支持的图片。",
  "error.method_not_allowed": "不允许的操作。",
};

export const DICTIONARIES = { "en-US": en, "zh-CN": zh };
let current = "zh-CN";

export function lang() {
  return current;
}

/** The remembered choice, else the browser's first language we have. */
export function initLang() {
  const saved = localStorage.getItem(LANG_KEY);
  const wanted = saved ? [saved] : navigator.languages || [navigator.language];
  current = "en-US";
  for (const l of wanted) {
    if (/^zh/i.test(l)) { current = "zh-CN"; break; }
    if (/^en/i.test(l)) { current = "en-US"; break; }
  }
  document.documentElement.lang = current;
}

export function setLang(l) {
  current = LANGS.includes(l) ? l : "en-US";
  localStorage.setItem(LANG_KEY, current);
  document.documentElement.lang = current;
  document.dispatchEvent(new Event("tandem:lang"));
}

/** The text for `key` with `{name}` filled from vars; else `fallback`, else the key. */
export function t(key, vars = {}, fallback) {
  const text = DICTIONARIES[current][key] ?? en[key] ?? fallback ?? key;
  return text.replace(/\{(\w+)\}/g, (_, k) => (k in vars ? String(vars[k]) : `{${k}}`));
}

/** A select that switches the language. */
export function langSwitch() {
  const s = document.createElement("select");
  s.id = "lang";
  s.setAttribute("aria-label", "Language / 语言");
  for (const [v, label] of [["zh-CN", "中文"], ["en-US", "English"]]) {
    const o = new Option(label, v, false, v === current);
    s.append(o);
  }
  s.addEventListener("change", () => setLang(s.value));
  return s;
}
